"""A small tokenizer that keeps character offsets (for the NER and the name rules), and case folding."""

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


# re.IGNORECASE also lets "i" match dotless i and dotted capital I, and "s" match long s
_ASCII_LOOKALIKES = "\u0131\u0130\u017f"
_FOLD_LOOKALIKES = str.maketrans({"\u0131": "i", "\u0130": "i", "\u017f": "s"})


def fold_ascii_case(text: str) -> str:
    """Lowercase so that a substring test on ASCII words agrees with re.IGNORECASE matching."""
    if any(c in text for c in _ASCII_LOOKALIKES):
        text = text.translate(_FOLD_LOOKALIKES)
    return text.lower()
