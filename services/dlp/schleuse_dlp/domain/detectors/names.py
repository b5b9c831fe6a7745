"""Person names by context rules (titles, self-introductions, signatures) and first+last name pairs."""

import itertools
import re
from collections.abc import Iterator

from schleuse_dlp.domain.gazetteer import STOP_WORDS, Gazetteer
from schleuse_dlp.domain.spans import PERSON, Span

_NAME = r"[A-ZÄÖÜ][a-zäöüß]+(?:-[A-ZÄÖÜ][a-zäöüß]+)?"
_PARTICLE = r"(?:(?:von|van|de|zu|von der|van der|vom) )?"
_FULL = rf"({_NAME}(?: {_PARTICLE}{_NAME}){{0,2}})"
_TITLES = r"(?:Dr\.|Prof\.|Dipl\.-Ing\.|med\.|rer\.\s?nat\.)"
_TITLE_CUE = re.compile(
    rf"(?<![\w])(?:Herrn?|Frau|Fr\.|Hr\.|Mr\.?|Mrs\.?|Ms\.?|Miss|Dr\.|Prof\.|Kollegin|Kollege)\s+"
    rf"(?:{_TITLES}\s?)*{_FULL}"
)
_INTRO = re.compile(
    rf"(?:[Mm]ein Name ist|[Ii]ch heiße|[Ii]ch heisse|[Mm]y name is|[Nn]ame:|[Aa]nsprechpartner(?:in)?:|"
    rf"[Kk]ontakt:|[Vv]ersicherte[r]?:|[Pp]atient(?:in)?:|[Mm]ieter(?:in)?:|[Kk]unde:|[Kk]undin:)\s*"
    rf"(?:{_TITLES}\s?)*{_FULL}"
)
_SELF = re.compile(rf"(?:[Ii]ch bin|I am|I'm|[Hh]ier ist|[Hh]ier spricht|[Tt]his is)\s+{_FULL}")
_SIGNATURE = re.compile(
    rf"(?:[Gg]rüße|[Gg]ruß|[Gg]rüßen|[Gg]russ|[Rr]egards|[Cc]heers|[Ss]incerely|LG|VG|MfG|[Dd]anke)[!,.]?"
    rf"[ \t]*\r?\n[ \t]*(?:{_TITLES}\s?)*{_FULL}[ \t]*(?:\r?\n|$)"
)


# Literals of which every match of the pattern contains one (all case-sensitive, like the patterns):
# the scan is skipped for texts without any of them.
_TRIGGERS: dict[re.Pattern[str], tuple[str, ...]] = {
    _TITLE_CUE: ("Herr", "Frau", "Fr.", "Hr.", "Mr", "Ms", "Miss", "Dr.", "Prof.", "Kolleg"),
    _INTRO: (
        "ein Name ist",
        "ch heiße",
        "ch heisse",
        "y name is",
        "ame:",
        "nsprechpartner",
        "ontakt:",
        "ersicherte",
        "atient",
        "ieter",
        "unde:",
        "undin:",
    ),
    _SIGNATURE: ("\n",),
    _SELF: ("ch bin", "I am", "I'm", "ier ist", "ier spricht", "his is"),
}


def _may_match(pattern: re.Pattern[str], text: str) -> bool:
    return any(t in text for t in _TRIGGERS[pattern])


_WORD_RE = re.compile(rf"(?<![\w-]){_NAME}(?![\w-])")
_PAIR_GAPS = frozenset({" ", " von ", " van ", " de ", " zu ", " von der ", " van der ", " vom "})


class NameRuleDetector:
    """PERSON spans from context cues and the first/last name gazetteer."""

    name = "name-rules"

    def __init__(self, gazetteer: Gazetteer, pair_max_rank: int = 1000) -> None:
        self._gaz = gazetteer
        self._pair_max_rank = pair_max_rank

    def detect(self, text: str, language: str) -> list[Span]:
        """All name spans found by rules."""
        return list(self._find(text))

    def _trim(self, start: int, words: str) -> Span | None:
        # drop trailing stop words / common nouns the greedy pattern swallowed ("Herr Meier Bescheid")
        parts = words.split(" ")
        while len(parts) > 1 and (
            parts[-1].lower() in STOP_WORDS
            or (self._gaz.last_rank(parts[-1]) is None and self._gaz.first_rank(parts[0]) is None)
        ):
            parts.pop()
        if parts[0].lower() in STOP_WORDS:
            return None
        return Span(start, start + len(" ".join(parts)), PERSON, 0.95, self.name)

    def _find(self, text: str) -> Iterator[Span]:
        for pattern in (_TITLE_CUE, _INTRO, _SIGNATURE):
            if not _may_match(pattern, text):
                continue
            for m in pattern.finditer(text):
                span = self._trim(m.start(1), m.group(1))
                if span:
                    yield span
        for m in _SELF.finditer(text) if _may_match(_SELF, text) else ():
            first = m.group(1).split(" ")[0]
            if self._gaz.first_rank(first) is not None:
                span = self._trim(m.start(1), m.group(1))
                if span:
                    yield span
        yield from self._pairs(text)

    def _pairs(self, text: str) -> Iterator[Span]:
        words = list(_WORD_RE.finditer(text))
        for first, second in itertools.pairwise(words):
            gap = text[first.end() : second.start()]
            if gap not in _PAIR_GAPS:
                continue
            first_rank = self._gaz.first_rank(first.group())
            if first_rank is None or first_rank > self._pair_max_rank:
                continue
            if self._gaz.last_rank(second.group()) is None:
                continue
            yield Span(first.start(), second.end(), PERSON, 0.7, "name-pair")
