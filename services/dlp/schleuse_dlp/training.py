"""Train the shipped German NER model (CRF) on GermEval 2014 data: `python -m schleuse_dlp.training`.

Deterministic: every 5th sentence (index % 5 == 0) is held out for evaluation and never trained on;
`--holdout-out` writes that part so bench/dlp_eval.py can report on text the model has not seen.
"""

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pycrfsuite

from schleuse_dlp.domain.detectors.ner import token_features
from schleuse_dlp.domain.gazetteer import STOP_WORDS, Gazetteer
from schleuse_dlp.domain.tokens import tokenize

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = PACKAGE_DIR / "models" / "ner_de.crfsuite"
DEFAULT_DATA = PACKAGE_DIR.parents[2].parent / "shared" / "dlp-data" / "germeval2014_dev.jsonl"
# MISC (works, events, nationalities) is learnt as a class of its own, so that capitalised titles and
# product names are not taught as "O" next to names; the detector drops MISC spans.
_TRAIN_LABELS = {"PERSON": "PER", "LOCATION": "LOC", "ORG": "ORG", "MISC": "MISC"}


def bio_tags(text: str, entities: list[dict[str, object]]) -> tuple[list[list[str]], list[str]] | None:
    """Tokenize and align gold character spans to BIO tags (_DERIV/_PART labels become O)."""
    tokens = tokenize(text)
    tags = ["O"] * len(tokens)
    for ent in entities:
        label = _TRAIN_LABELS.get(str(ent["label"]))
        if label is None:
            continue
        start, end = int(str(ent["start"])), int(str(ent["end"]))
        inside = [i for i, t in enumerate(tokens) if t.start >= start and t.end <= end]
        for k, i in enumerate(inside):
            tags[i] = ("B-" if k == 0 else "I-") + label
    return [t.text for t in tokens], tags


# share of swapped-in person names taken from the corpus itself rather than the gazetteer
CORPUS_SHARE = 0.5


def augment(rows: list[dict[str, Any]], gaz: Gazetteer, copies: int, seed: int = 7) -> list[dict[str, Any]]:
    """Copies of sentences with persons (and places) swapped for other names.

    Half of the new names come from the gazetteer, half from the persons of the other training
    sentences (names the lists may not know), so the model learns the contexts names occur in rather
    than the few names of the corpus, without learning that every name is in the lists.
    """
    rng = random.Random(seed)
    firsts = sorted(n for n, r in gaz.first_names.items() if r < 1500 and n.isalpha() and n.lower() not in STOP_WORDS)
    lasts = sorted(n for n, r in gaz.last_names.items() if r < 3000 and n.isalpha() and n.lower() not in STOP_WORDS)
    places = sorted(n for n in gaz.toponyms if n.isalpha())
    corpus_single = sorted(
        {
            r["text"][e["start"] : e["end"]]
            for r in rows
            for e in r["entities"]
            if e["label"] == "PERSON" and " " not in r["text"][e["start"] : e["end"]]
        }
    )
    corpus_multi = sorted(
        {
            r["text"][e["start"] : e["end"]]
            for r in rows
            for e in r["entities"]
            if e["label"] == "PERSON" and " " in r["text"][e["start"] : e["end"]]
        }
    )
    out: list[dict[str, Any]] = []
    for row in rows:
        swappable = [e for e in row["entities"] if e["label"] in ("PERSON", "LOCATION")]
        if not swappable:
            continue
        for _ in range(copies):
            text, ents, shift = row["text"], [], 0
            for e in sorted(row["entities"], key=lambda e: e["start"]):
                start, end = e["start"] + shift, e["end"] + shift
                new = None
                if e["label"] == "PERSON":
                    multi = " " in text[start:end]
                    if CORPUS_SHARE and rng.random() < CORPUS_SHARE and (corpus_multi if multi else corpus_single):
                        new = rng.choice(corpus_multi if multi else corpus_single)
                    elif multi:
                        new = f"{rng.choice(firsts)} {rng.choice(lasts)}"
                    else:
                        new = rng.choice(lasts if rng.random() < 0.7 else firsts)
                elif e["label"] == "LOCATION" and rng.random() < 0.5:
                    new = rng.choice(places)
                if new is not None:
                    text = text[:start] + new + text[end:]
                    shift += len(new) - (end - start)
                    end = start + len(new)
                ents.append({"start": start, "end": end, "label": e["label"]})
            out.append({"text": text, "entities": ents})
    return out


def split(lines: list[str], every: int) -> tuple[list[str], list[str]]:
    """Deterministic train/holdout split: every `every`-th line is held out."""
    train = [ln for i, ln in enumerate(lines) if i % every != 0]
    held = [ln for i, ln in enumerate(lines) if i % every == 0]
    return train, held


def train_rows(
    rows: list[dict[str, Any]],
    model: Path,
    gaz: Gazetteer,
    c1: float = 0.05,
    c2: float = 0.05,
    copies: int = 2,
    max_iterations: int = 200,
) -> None:
    """Train a CRF on labelled rows (plus `copies` name-swapped copies of each) and write it to `model`."""
    trainer = pycrfsuite.Trainer(verbose=False)
    for row in rows + augment(rows, gaz, copies):
        tokens = tokenize(row["text"])
        if not tokens:
            continue
        _, tags = bio_tags(row["text"], row["entities"])  # type: ignore[misc]
        trainer.append(token_features(tokens, gaz), tags)
    trainer.set_params({"c1": c1, "c2": c2, "max_iterations": max_iterations, "feature.possible_transitions": True})
    model.parent.mkdir(parents=True, exist_ok=True)
    tmp = model.with_suffix(".tmp")
    trainer.train(str(tmp))
    tmp.replace(model)


def train(data: Path, model: Path, every: int, holdout_out: Path | None, c1: float, c2: float, copies: int) -> None:
    lines = [ln for ln in data.read_text(encoding="utf-8").splitlines() if ln.strip()]
    train_lines, held = split(lines, every) if every > 0 else (lines, [])
    gaz = Gazetteer.load()
    rows = [json.loads(line) for line in train_lines]
    started = time.perf_counter()
    train_rows(rows, model, gaz, c1, c2, copies)
    notice = data.parent / "germeval2014_dev.LICENSE.txt"
    if notice.exists():
        shutil.copyfile(notice, model.parent / "GERMEVAL2014.LICENSE.txt")
    if holdout_out is not None:
        holdout_out.parent.mkdir(parents=True, exist_ok=True)
        holdout_out.write_text("\n".join(held) + "\n", encoding="utf-8")
    print(
        f"trained on {len(train_lines)} sentences ({len(held)} held out) in "
        f"{time.perf_counter() - started:.1f}s -> {model} ({model.stat().st_size // 1024} KiB)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--holdout-every", type=int, default=5, help="hold out every n-th sentence (0: none)")
    ap.add_argument("--holdout-out", type=Path, default=None)
    ap.add_argument("--if-missing", action="store_true", help="do nothing if the model file exists")
    ap.add_argument("--augment", type=int, default=2, help="name-swapped copies per sentence with names")
    ap.add_argument("--c1", type=float, default=0.05)
    ap.add_argument("--c2", type=float, default=0.05)
    args = ap.parse_args()
    if args.if_missing and args.model.exists():
        return
    if not args.data.exists():
        sys.exit(f"training data not found: {args.data}")
    train(args.data, args.model, args.holdout_every, args.holdout_out, args.c1, args.c2, args.augment)


if __name__ == "__main__":
    main()
