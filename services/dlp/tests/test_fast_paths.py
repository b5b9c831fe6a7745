"""The inference shortcuts give exactly what the plain code gives: cached features, cheap pre-checks."""

import pytest

from schleuse_dlp.domain.detectors.identifiers import find_dates_of_birth
from schleuse_dlp.domain.detectors.ner import FastFeatures, token_features
from schleuse_dlp.domain.detectors.secrets import find_secrets
from schleuse_dlp.domain.gazetteer import Gazetteer
from schleuse_dlp.domain.tokens import fold_ascii_case, tokenize

TEXTS = [
    "Müller",
    "Herr Müller",
    "Laut Trainer Klopp sagte W. Müller , dass Fernando Collor de Mello in Bonn war .",
    "Wir. Müller schrieb: „Die Stadtwerke-Köln GmbH zahlt 1.200 Euro.“ Ende",
    "sagte er . Und dann ? Anna von der Leyen , Präsidentin",
]


@pytest.mark.parametrize("text", TEXTS)
def test_cached_features_equal_the_training_features_without_unknown_attributes(
    text: str, gazetteer: Gazetteer
) -> None:
    tokens = tokenize(text)
    full = token_features(tokens, gazetteer)
    every = sorted({x for f in full for x in f})
    for known in (frozenset(every), frozenset(every[::2]), frozenset(every[1::3])):
        assert FastFeatures(gazetteer, known)(tokens) == [[x for x in f if x in known] for f in full]


def test_case_folding_agrees_with_ignorecase_matching() -> None:
    assert fold_ascii_case("GEB. am PA\u017f\u017fWORT \u0130D \u212a") == "geb. am passwort id k"


def test_birth_and_password_cues_are_found_in_any_case() -> None:
    text = "GEB. AM 01.02.1980, PASSWORT: x7Yk2!pq"
    assert [(s.entity_type, text[s.start : s.end]) for s in find_dates_of_birth(text)] == [
        ("DATE_OF_BIRTH", "01.02.1980")
    ]
    assert [text[s.start : s.end] for s in find_secrets(text)] == ["x7Yk2!pq"]
    assert list(find_dates_of_birth("Am 01.02.1980 war Markttag.")) == []
