"""Person names from context rules, gazetteer pairs and the NER model."""

import pytest

from schleuse_dlp.domain.analyzer import Analyzer
from schleuse_dlp.domain.detectors.names import NameRuleDetector
from schleuse_dlp.domain.gazetteer import Gazetteer
from schleuse_dlp.domain.language import detect_language
from schleuse_dlp.settings import DEFAULT_NER_MODEL


def names(det: NameRuleDetector, text: str) -> set[str]:
    return {text[s.start : s.end] for s in det.detect(text, "de")}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sehr geehrter Herr Kowalczyk, vielen Dank.", "Kowalczyk"),
        ("Bitte an Frau Dr. Anna Schmidt weiterleiten.", "Anna Schmidt"),
        ("Hallo, mein Name ist Jonas Becker und ich habe eine Frage.", "Jonas Becker"),
        ("Mit freundlichen Grüßen\nLena Hoffmann\nTeamleitung", "Lena Hoffmann"),
        ("Dear Mr. Thompson, thanks a lot.", "Thompson"),
        ("Gestern hat Julia Wagner angerufen.", "Julia Wagner"),
    ],
)
def test_rules_find_names(gazetteer: Gazetteer, text: str, expected: str) -> None:
    assert expected in names(NameRuleDetector(gazetteer), text)


@pytest.mark.parametrize(
    "text",
    [
        "Die Stadt hat eine neue Brücke gebaut.",
        "Herr über die Lage ist der Rat.",
        "Mit freundlichen Grüßen\nIhr Team",
    ],
)
def test_rules_ignore_ordinary_words(gazetteer: Gazetteer, text: str) -> None:
    assert names(NameRuleDetector(gazetteer), text) == set()


@pytest.mark.skipif(not DEFAULT_NER_MODEL.exists(), reason="NER model not built (make models)")
def test_ner_model_finds_people_and_places(analyzer: Analyzer) -> None:
    text = "Bundeskanzler Olaf Scholz traf am Montag in Paris den Präsidenten Emmanuel Macron."
    found = {(text[s.start : s.end], s.entity_type) for s in analyzer.analyze(text).spans}
    assert ("Olaf Scholz", "PERSON") in found
    assert ("Emmanuel Macron", "PERSON") in found
    assert ("Paris", "LOCATION") in found


def test_language_is_detected_per_message() -> None:
    assert detect_language("Ich habe eine Frage zu meiner Rechnung und bitte um Rückruf.") == "de"
    assert detect_language("I have a question about my invoice, please call me back.") == "en"
    assert detect_language("1234") == "de"
