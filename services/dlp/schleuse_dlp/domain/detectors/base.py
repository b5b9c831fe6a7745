"""The detector port: anything that turns text into spans can be plugged into the analyzer."""

from typing import Protocol

from schleuse_dlp.domain.spans import Span


class Detector(Protocol):
    """Finds spans of one or more entity types in a text."""

    name: str

    def detect(self, text: str, language: str) -> list[Span]:
        """Return the spans found in `text` (language is "de" or "en")."""
        ...
