"""A small tokenizer that keeps character offsets (for the NER and the name rules)."""

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\w+(?:[-'\u2019]\w+)*|[^\w\s]")


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """Words (with inner hyphens/apostrophes) and single punctuation characters, with offsets."""
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
