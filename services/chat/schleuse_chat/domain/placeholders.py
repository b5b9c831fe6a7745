"""Holding back streamed text that may end in half a placeholder, so `[PERSON_1]` is restored whole."""

from __future__ import annotations

import re

PLACEHOLDER = re.compile(r"\[[A-Z][A-Z_]*_\d+\]")
MAX_PLACEHOLDER_LEN = 40


def has_placeholder(text: str) -> bool:
    """True when `text` contains at least one complete placeholder."""
    return PLACEHOLDER.search(text) is not None


class PlaceholderBuffer:
    """Feed streamed deltas; get back text that is safe to restore now (never a cut placeholder)."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, delta: str) -> str:
        """Add a delta; returns the releasable prefix and keeps a possible placeholder start."""
        text = self._held + delta
        cut = text.rfind("[")
        if cut == -1 or "]" in text[cut:] or len(text) - cut > MAX_PLACEHOLDER_LEN:
            self._held = ""
            return text
        self._held = text[cut:]
        return text[:cut]

    def flush(self) -> str:
        """Everything still held, at the end of the stream."""
        text, self._held = self._held, ""
        return text
