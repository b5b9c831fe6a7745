"""The analyzer: runs the configured detectors and keeps one consistent, non-overlapping set of spans."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from schleuse_dlp.domain import spans as t
from schleuse_dlp.domain.detectors.address import AddressDetector
from schleuse_dlp.domain.detectors.base import Detector
from schleuse_dlp.domain.detectors.identifiers import IdentifierDetector
from schleuse_dlp.domain.detectors.names import NameRuleDetector
from schleuse_dlp.domain.detectors.ner import CrfNerDetector
from schleuse_dlp.domain.detectors.secrets import SecretDetector
from schleuse_dlp.domain.gazetteer import Gazetteer
from schleuse_dlp.domain.language import detect_language
from schleuse_dlp.domain.spans import Span, resolve_overlaps

# When spans overlap, the more specific (validated) type wins.
PRIORITY: dict[str, int] = {
    t.SECRET: 100,
    t.IBAN: 95,
    t.CREDIT_CARD: 92,
    t.EMAIL: 90,
    t.SOCIAL_SECURITY: 88,
    t.HEALTH_INSURANCE: 87,
    t.TAX_ID: 86,
    t.TAX_NUMBER: 85,
    t.PASSPORT: 84,
    t.ID_CARD: 84,
    t.BIC: 80,
    t.IP_ADDRESS: 78,
    t.PHONE: 70,
    t.DATE_OF_BIRTH: 65,
    t.ADDRESS: 60,
    t.LICENSE_PLATE: 55,
    t.PERSON: 30,
    t.ORG: 20,
    t.LOCATION: 20,
}


@dataclass(frozen=True)
class Analysis:
    """The result of analysing one text."""

    language: str
    spans: list[Span]


class Analyzer:
    """Pluggable detector pipeline."""

    def __init__(self, detectors: Sequence[Detector], priority: dict[str, int] | None = None) -> None:
        self.detectors = list(detectors)
        self._priority = priority or PRIORITY

    def analyze(self, text: str, language: str | None = None) -> Analysis:
        """Detect language, run all detectors, resolve overlaps."""
        lang = language or detect_language(text)
        found: list[Span] = []
        for detector in self.detectors:
            found.extend(detector.detect(text, lang))
        return Analysis(lang, resolve_overlaps(found, self._priority))


def build_default_analyzer(
    ner_model: Path | None, gazetteer: Gazetteer | None = None, use_name_rules: bool = True
) -> Analyzer:
    """The standard pipeline; without an NER model file names come from rules and gazetteers only."""
    gaz = gazetteer if gazetteer is not None else Gazetteer.load()
    detectors: list[Detector] = [IdentifierDetector(), SecretDetector(), AddressDetector()]
    if ner_model is not None and ner_model.exists():
        detectors.append(CrfNerDetector(ner_model, gaz))
    if use_name_rules:
        detectors.append(NameRuleDetector(gaz))
    return Analyzer(detectors)
