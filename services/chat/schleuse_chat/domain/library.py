"""Prompt templates with `{{variables}}`, and ratings as the library shows them."""

from __future__ import annotations

import re

VARIABLE = re.compile(r"\{\{\s*([\wäöüÄÖÜß-]+)\s*\}\}")


def variables_of(template: str) -> list[str]:
    """The distinct variable names of a template, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in VARIABLE.finditer(template):
        seen.setdefault(match.group(1), None)
    return list(seen)


def render(template: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """Fill in the variables; unknown ones stay as they are and are reported missing."""
    missing = [name for name in variables_of(template) if name not in values]

    def fill(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    return VARIABLE.sub(fill, template), missing


def average(total: int, count: int) -> float | None:
    """The mean rating rounded to two places, None when nobody rated."""
    return round(total / count, 2) if count else None
