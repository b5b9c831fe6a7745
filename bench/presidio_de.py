"""Presidio (presidio-analyzer) configured for German, offline, for the side-by-side in dlp_eval.py.

- NLP engine: a spaCy German NER trained here on the SAME 80 % GermEval split as our model (no German
  spaCy pipeline can be downloaded in this environment), saved under bench/.models/ on first use.
- Recognizers: presidio's German ones (disabled by default upstream) switched on, plus its generic
  e-mail, phone (regions DE/AT/CH/FR/GB/US), IBAN, credit card and IP recognizers for language "de".
- Score threshold 0.4 (presidio's default of 0 keeps every weak pattern hit).
Presidio has no recognizer for BIC, dates of birth, postal addresses or API keys: those score 0 recall.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GERMEVAL = ROOT.parent / "shared" / "dlp-data" / "germeval2014_dev.jsonl"
SCORE_THRESHOLD = 0.4
SPACY_LABELS = {"PERSON": "PER", "LOCATION": "LOC", "ORG": "ORG"}


def train_spacy_ner(target: Path, epochs: int = 12, seed: int = 7) -> None:
    """A small spaCy NER (default tok2vec) on the training 80 % of GermEval dev (every 5th line held out)."""
    import spacy
    from spacy.training import Example

    sys.path.insert(0, str(ROOT / "services" / "dlp"))
    from schleuse_dlp.training import split

    lines = [ln for ln in GERMEVAL.read_text(encoding="utf-8").splitlines() if ln.strip()]
    train_lines, _ = split(lines, 5)
    nlp = spacy.blank("de")
    ner = nlp.add_pipe("ner")
    for label in SPACY_LABELS.values():
        ner.add_label(label)
    examples = []
    for line in train_lines:
        row = json.loads(line)
        doc = nlp.make_doc(row["text"])
        ents = [(e["start"], e["end"], SPACY_LABELS[e["label"]]) for e in row["entities"] if e["label"] in SPACY_LABELS]
        examples.append(Example.from_dict(doc, {"entities": ents}))
    random.seed(seed)
    spacy.util.fix_random_seed(seed)
    optimizer = nlp.initialize(lambda: examples)
    for epoch in range(epochs):
        random.shuffle(examples)
        losses: dict[str, float] = {}
        for batch in spacy.util.minibatch(examples, size=16):
            nlp.update(batch, sgd=optimizer, drop=0.2, losses=losses)
        print(f"  spaCy NER epoch {epoch + 1}/{epochs} loss {losses.get('ner', 0):.1f}", file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(target)


def build_presidio(model_dir: Path, threshold: float = SCORE_THRESHOLD):  # -> tuple[AnalyzerEngine, str]
    """An AnalyzerEngine for German with every German recognizer presidio ships enabled."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        DeHealthInsuranceRecognizer,
        DeIdCardRecognizer,
        DeKfzRecognizer,
        DePassportRecognizer,
        DeSocialSecurityRecognizer,
        DeTaxIdRecognizer,
        DeTaxNumberRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
    )

    # presidio's e-mail recognizer asks tldextract for a fresh suffix list; offline it uses its bundled copy
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    if not (model_dir / "meta.json").exists():
        print(f"training presidio's spaCy NER into {model_dir} (once)...", file=sys.stderr)
        train_spacy_ner(model_dir)
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "de", "model_name": str(model_dir)}],
            "ner_model_configuration": {
                "model_to_presidio_entity_mapping": {"PER": "PERSON", "LOC": "LOCATION", "ORG": "ORGANIZATION"},
                "low_confidence_score_multiplier": 1.0,
                "low_score_entity_names": [],
            },
        }
    )
    registry = RecognizerRegistry(supported_languages=["de"])
    for rec in (
        SpacyRecognizer(supported_language="de", supported_entities=["PERSON", "LOCATION", "ORGANIZATION"]),
        EmailRecognizer(supported_language="de"),
        PhoneRecognizer(supported_language="de", supported_regions=("DE", "AT", "CH", "FR", "GB", "US")),
        IbanRecognizer(supported_language="de"),
        CreditCardRecognizer(supported_language="de"),
        IpRecognizer(supported_language="de"),
        DeTaxIdRecognizer(),
        DeTaxNumberRecognizer(),
        DePassportRecognizer(),
        DeIdCardRecognizer(),
        DeSocialSecurityRecognizer(),
        DeHealthInsuranceRecognizer(),
        DeKfzRecognizer(),
    ):
        registry.add_recognizer(rec)
    engine = AnalyzerEngine(
        nlp_engine=provider.create_engine(),
        registry=registry,
        supported_languages=["de"],
        default_score_threshold=threshold,
    )
    note = (
        f"presidio-analyzer with its German recognizers enabled, spaCy NER trained on the same GermEval 80 % "
        f"split ({model_dir.name}), score threshold {threshold}"
    )
    return engine, note
