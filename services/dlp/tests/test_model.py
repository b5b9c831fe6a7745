"""The NER model: training on JSONL, loading, and the degraded mode without a model file."""

import json
from pathlib import Path

from schleuse_dlp.domain.analyzer import build_default_analyzer
from schleuse_dlp.domain.detectors.ner import CrfNerDetector, bio_to_spans, repair_person_tags
from schleuse_dlp.domain.gazetteer import Gazetteer
from schleuse_dlp.domain.tokens import tokenize
from schleuse_dlp.training import bio_tags, split, train


def test_bio_alignment_ignores_deriv_and_part_and_keeps_misc_as_its_own_class() -> None:
    text = "Angela Merkel besuchte die deutschen Werke in Bonn zur Expo ."
    ents = [
        {"start": 0, "end": 13, "label": "PERSON"},
        {"start": 27, "end": 36, "label": "LOCATION_DERIV"},
        {"start": 46, "end": 50, "label": "LOCATION"},
        {"start": 55, "end": 59, "label": "MISC"},
    ]
    _, tags = bio_tags(text, ents)
    assert tags == ["B-PER", "I-PER", "O", "O", "O", "O", "O", "B-LOC", "O", "B-MISC", "O"]


def test_misc_tags_are_not_reported_as_findings() -> None:
    tokens = tokenize("Die Expo in Bonn")
    spans = bio_to_spans(tokens, ["O", "B-MISC", "O", "B-LOC"])
    assert [(s.start, s.end, s.entity_type) for s in spans] == [(12, 16, "LOCATION")]


def test_split_holds_out_every_fifth_line() -> None:
    train_part, held = split([str(i) for i in range(10)], 5)
    assert held == ["0", "5"] and len(train_part) == 8


def test_training_writes_a_model_the_detector_can_use(tmp_path: Path, gazetteer: Gazetteer) -> None:
    rows = []
    for first, last, city in [("Anna", "Schmidt", "Berlin"), ("Jonas", "Becker", "Köln"), ("Lena", "Wolf", "Bonn")]:
        text = f"Gestern hat {first} {last} in {city} angerufen ."
        rows.append(
            {
                "text": text,
                "entities": [
                    {"start": 12, "end": 13 + len(first) + len(last), "label": "PERSON"},
                    {"start": text.index(city), "end": text.index(city) + len(city), "label": "LOCATION"},
                ],
            }
        )
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows * 10), encoding="utf-8")
    model = tmp_path / "m.crfsuite"
    train(data, model, every=0, holdout_out=None, c1=0.0, c2=0.01, copies=0)
    detector = CrfNerDetector(model, gazetteer)
    text = "Gestern hat Anna Schmidt in Berlin angerufen ."
    found = {(text[s.start : s.end], s.entity_type) for s in detector.detect(text, "de")}
    assert ("Anna Schmidt", "PERSON") in found


def test_without_model_names_still_come_from_rules(tmp_path: Path, gazetteer: Gazetteer) -> None:
    analyzer = build_default_analyzer(tmp_path / "missing.crfsuite", gazetteer)
    assert "ner-crf" not in {d.name for d in analyzer.detectors}
    text = "Sehr geehrte Frau Kowalczyk, bitte rufen Sie 0171 2345678 an."
    found = {(text[s.start : s.end], s.entity_type) for s in analyzer.analyze(text).spans}
    assert ("Kowalczyk", "PERSON") in found and ("0171 2345678", "PHONE") in found


def test_repair_splits_names_at_lowercase_words_and_drops_leading_roles(gazetteer: Gazetteer) -> None:
    tokens = tokenize("Detlef Untermann ließ Blaszkiewitz gehen")
    tags = repair_person_tags(tokens, ["B-PER", "I-PER", "I-PER", "I-PER", "O"], gazetteer)
    assert tags == ["B-PER", "I-PER", "O", "B-PER", "O"]
    tokens = tokenize("Fußballtrainer Peter Pander")
    assert repair_person_tags(tokens, ["B-PER", "I-PER", "I-PER"], gazetteer) == ["O", "B-PER", "I-PER"]


def test_repair_joins_names_over_particles_and_takes_in_initials(gazetteer: Gazetteer) -> None:
    tokens = tokenize("Fernando Collor de Mello")
    assert repair_person_tags(tokens, ["B-PER", "I-PER", "O", "B-PER"], gazetteer) == [
        "B-PER",
        "I-PER",
        "I-PER",
        "I-PER",
    ]
    tokens = tokenize("von W. Müller")
    assert repair_person_tags(tokens, ["O", "O", "O", "B-PER"], gazetteer) == ["O", "B-PER", "I-PER", "I-PER"]
    # a dot after a whole word still ends a sentence: nothing is taken in
    tokens = tokenize("Wir. Müller")
    assert repair_person_tags(tokens, ["O", "O", "B-PER"], gazetteer) == ["O", "O", "B-PER"]


def test_word_frequencies_come_from_the_shipped_german_list(gazetteer: Gazetteer) -> None:
    assert gazetteer.zipf("Haus") > gazetteer.zipf("Blaszkiewitz")
    assert gazetteer.zipf("Haus") == gazetteer.zipf("haus") > 4
    assert Gazetteer.empty().zipf("Haus") == 0.0
