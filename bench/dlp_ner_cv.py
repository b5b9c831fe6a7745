"""K-fold cross-validation of the NER model inside the training part of GermEval (never the holdout).

Usage (from the repo root):  .venv/bin/python bench/dlp_ner_cv.py [--folds 4] [--c1 ..] [--c2 ..] [--augment N]
Splits the 80 % training part (training.split) into folds by line index, trains on the others, and
scores PERSON/LOCATION/ORG strictly on the held fold: the CRF alone and the full analyzer (CRF + rules).
The last line printed is one JSON object with the mean figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services" / "dlp"))
sys.path.insert(0, str(ROOT / "bench"))

from dlp_eval import prf, score

from schleuse_dlp.domain.analyzer import build_default_analyzer
from schleuse_dlp.domain.detectors.ner import CrfNerDetector
from schleuse_dlp.domain.gazetteer import Gazetteer
from schleuse_dlp.training import DEFAULT_DATA, split, train_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--only", type=int, default=-1, help="run one fold only")
    ap.add_argument("--c1", type=float, default=None)
    ap.add_argument("--c2", type=float, default=None)
    ap.add_argument("--augment", type=int, default=None)
    ap.add_argument("--gazetteer", type=Path, default=None, help="another data directory with name lists")
    ap.add_argument("--errors", type=Path, default=None, help="write PERSON errors of the full pipeline here")
    args = ap.parse_args()
    lines = [ln for ln in args.data.read_text(encoding="utf-8").splitlines() if ln.strip()]
    train_lines, _ = split(lines, 5)  # the holdout is never touched
    gaz = Gazetteer.load(args.gazetteer) if args.gazetteer else Gazetteer.load()
    kw = {k: v for k, v in (("c1", args.c1), ("c2", args.c2), ("copies", args.augment)) if v is not None}
    totals: dict[str, dict[str, list[int]]] = {}
    err_out = []
    started = time.perf_counter()
    for fold in range(args.folds):
        if args.only >= 0 and fold != args.only:
            continue
        fit = [json.loads(ln) for i, ln in enumerate(train_lines) if i % args.folds != fold]
        test = [json.loads(ln) for i, ln in enumerate(train_lines) if i % args.folds == fold]
        with tempfile.TemporaryDirectory() as tmp:
            model = Path(tmp) / "m.crfsuite"
            train_rows(fit, model, gaz, **kw)
            ner = CrfNerDetector(model, gaz)
            full = build_default_analyzer(model, gaz)
            for name, predict in (
                ("crf", lambda s, ner=ner: [(x.start, x.end, x.entity_type) for x in ner.detect(s, "de")]),
                ("full", lambda s, full=full: [(x.start, x.end, x.entity_type) for x in full.analyze(s).spans]),
            ):
                preds = [predict(r["text"]) for r in test]
                res = score(test, preds)
                for lab in ("PERSON", "LOCATION", "ORG"):
                    acc = totals.setdefault(f"{name}.{lab}", {"tp": [], "fp": [], "fn": []})
                    for k in ("tp", "fp", "fn"):
                        acc[k].append(res[lab][k])
                if name == "full" and args.errors:
                    for r, p in zip(test, preds, strict=True):
                        gold = {(e["start"], e["end"]) for e in r["entities"] if e["label"] == "PERSON"}
                        got = {(s, e) for s, e, t in p if t == "PERSON"}
                        if gold != got:
                            t = r["text"]
                            err_out.append(
                                {
                                    "text": t,
                                    "missed": [t[s:e] for s, e in sorted(gold - got)],
                                    "spurious": [t[s:e] for s, e in sorted(got - gold)],
                                }
                            )
        print(f"fold {fold} done {time.perf_counter() - started:.0f}s", file=sys.stderr)
    final = {}
    for key, acc in totals.items():
        final[key] = prf(sum(acc["tp"]), sum(acc["fp"]), sum(acc["fn"]))
    for key in ("crf.PERSON", "full.PERSON", "full.LOCATION", "full.ORG"):
        v = final[key]
        print(f"{key:<16} P {v['p']:.3f} R {v['r']:.3f} F1 {v['f1']:.3f}  (tp {v['tp']} fp {v['fp']} fn {v['fn']})")
    if args.errors:
        args.errors.write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in err_out) + "\n", encoding="utf-8")
    print(json.dumps({k: final[k]["f1"] for k in sorted(final)}))


if __name__ == "__main__":
    main()
