"""Evaluate the DLP detectors on labelled JSONL: per-entity P/R/F1, latency, throughput, vs. Presidio.

Usage (from the repo root, after make install):  python bench/dlp_eval.py FILE.jsonl [--no-presidio]
Input lines: {"text": "...", "entities": [{"start": 0, "end": 5, "label": "PERSON"}, ...]}.
Scoring is strict (exact start, end and label). Gold labels ending in _DERIV/_PART are ignored (not PII):
a prediction overlapping only such a span counts neither way. Gold labels this system cannot produce
(e.g. MISC) are reported separately under "unknown_labels". The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from project_env import use_project_venv

use_project_venv()

# gold label spellings -> our types
GOLD_ALIASES = {
    "PER": "PERSON",
    "LOC": "LOCATION",
    "ORGANIZATION": "ORG",
    "ORGANISATION": "ORG",
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "IBAN_CODE": "IBAN",
    "CARD": "CREDIT_CARD",
    "IP": "IP_ADDRESS",
    "URL_CREDENTIALS": "SECRET",
    "API_KEY": "SECRET",
    "PLATE": "LICENSE_PLATE",
}
# our fine types -> the coarse labels a gold file may use instead
COARSE = {
    "TAX_ID": "ID",
    "TAX_NUMBER": "ID",
    "SOCIAL_SECURITY": "ID",
    "HEALTH_INSURANCE": "ID",
    "ID_CARD": "ID",
    "PASSPORT": "ID",
    "LICENSE_PLATE": "ID",
    "DATE_OF_BIRTH": "DATE",
    "BIC": "IBAN",
}
OUR_TYPES = {
    "PERSON",
    "LOCATION",
    "ORG",
    "EMAIL",
    "PHONE",
    "IBAN",
    "BIC",
    "CREDIT_CARD",
    "TAX_ID",
    "TAX_NUMBER",
    "SOCIAL_SECURITY",
    "HEALTH_INSURANCE",
    "ID_CARD",
    "PASSPORT",
    "LICENSE_PLATE",
    "IP_ADDRESS",
    "DATE_OF_BIRTH",
    "ADDRESS",
    "SECRET",
}
NAMED = {"PERSON", "LOCATION", "ORG"}
# presidio's entity names -> ours
PRESIDIO_TYPES = {
    "PERSON": "PERSON",
    "LOCATION": "LOCATION",
    "ORGANIZATION": "ORG",
    "NRP": None,
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "IBAN_CODE": "IBAN",
    "CREDIT_CARD": "CREDIT_CARD",
    "IP_ADDRESS": "IP_ADDRESS",
    "DATE_TIME": None,
    "URL": None,
    "DE_TAX_ID": "TAX_ID",
    "DE_TAX_NUMBER": "TAX_NUMBER",
    "DE_SOCIAL_SECURITY": "SOCIAL_SECURITY",
    "DE_HEALTH_INSURANCE": "HEALTH_INSURANCE",
    "DE_ID_CARD": "ID_CARD",
    "DE_PASSPORT": "PASSPORT",
    "DE_KFZ": "LICENSE_PLATE",
}

Predict = Callable[[str], list[tuple[int, int, str]]]


def load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def norm_gold(label: str) -> str:
    return GOLD_ALIASES.get(label.upper(), label.upper())


def score(rows: list[dict], preds: list[list[tuple[int, int, str]]]) -> dict:
    gold_labels = {norm_gold(e["label"]) for r in rows for e in r["entities"]}
    gold_labels = {lb for lb in gold_labels if not lb.endswith(("_DERIV", "_PART"))}
    producible = OUR_TYPES | set(COARSE.values())
    unknown = sorted(gold_labels - producible)
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    unscored: Counter[str] = Counter()
    unknown_stats: dict[str, Counter[str]] = defaultdict(Counter)
    for row, pred in zip(rows, preds, strict=True):
        gold, ignored, unk = set(), [], []
        for e in row["entities"]:
            lab = norm_gold(e["label"])
            if lab.endswith(("_DERIV", "_PART")):
                ignored.append((e["start"], e["end"]))
            elif lab in unknown:
                unk.append((e["start"], e["end"], lab))
            else:
                gold.add((e["start"], e["end"], lab))
        mapped = set()
        for s, e, typ in pred:
            lab = typ if typ in gold_labels else COARSE.get(typ, typ)
            if lab not in gold_labels:
                unscored[typ] += 1
                continue
            mapped.add((s, e, lab))
        for s, e, lab in unk:
            unknown_stats[lab]["gold"] += 1
            if any(ps < e and s < pe for ps, pe, _ in mapped):
                unknown_stats[lab]["overlapped_by_a_prediction"] += 1
        for item in mapped:
            if item in gold:
                tp[item[2]] += 1
            elif not any(item[0] < ie and is_ < item[1] for is_, ie in ignored) or any(
                item[0] < ge and gs < item[1] for gs, ge, _ in gold
            ):
                fp[item[2]] += 1
        for item in gold - mapped:
            fn[item[2]] += 1
    out: dict = {}
    for lab in sorted(gold_labels - set(unknown)):
        out[lab] = prf(tp[lab], fp[lab], fn[lab])
    structured = [lab for lab in out if lab not in NAMED]
    if structured:
        out["STRUCTURED_MICRO"] = prf(*(sum(c[lab] for lab in structured) for c in (tp, fp, fn)))
    out["ALL_MICRO"] = prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    out["unknown_labels"] = {k: dict(v) for k, v in unknown_stats.items()}
    out["unscored_predictions"] = dict(unscored)
    return out


def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": round(p, 4), "r": round(r, 4), "f1": round(f1, 4), "tp": tp, "fp": fp, "fn": fn}


def timed(predict: Predict, texts: list[str]) -> tuple[list[list[tuple[int, int, str]]], list[float]]:
    preds, lat = [], []
    for text in texts:
        t0 = time.perf_counter()
        preds.append(predict(text))
        lat.append((time.perf_counter() - t0) * 1000)
    return preds, lat


def windows_500(texts: list[str], n: int = 300) -> list[str]:
    """~500-character messages built from consecutive texts (the latency target's unit)."""
    out, buf = [], ""
    for text in texts * 50:
        buf = f"{buf} {text}".strip()
        if len(buf) >= 500:
            out.append(buf[:500])
            buf = ""
            if len(out) == n:
                break
    return out


def run(name: str, predict: Predict, rows: list[dict]) -> dict:
    texts = [r["text"] for r in rows]
    for text in texts[:20]:  # warm caches
        predict(text)
    preds, lat = timed(predict, texts)
    result = score(rows, preds)
    _, lat500 = timed(predict, windows_500(texts))
    total_s = sum(lat) / 1000
    result.update(
        {
            "p50_ms": round(statistics.median(lat), 3),
            "p99_ms": round(sorted(lat)[max(0, int(len(lat) * 0.99) - 1)], 3),
            "msgs_per_s": round(len(texts) / total_s, 1) if total_s else None,
            "p50_ms_500_chars": round(statistics.median(lat500), 3) if lat500 else None,
            "messages": len(texts),
        }
    )
    print_table(name, result)
    return result


def print_table(name: str, res: dict) -> None:
    print(f"\n== {name} ==")
    print(f"{'label':<20}{'P':>8}{'R':>8}{'F1':>8}{'TP':>7}{'FP':>7}{'FN':>7}")
    for lab, v in res.items():
        if isinstance(v, dict) and "f1" in v:
            print(f"{lab:<20}{v['p']:>8.3f}{v['r']:>8.3f}{v['f1']:>8.3f}{v['tp']:>7}{v['fp']:>7}{v['fn']:>7}")
    if res.get("unknown_labels"):
        print("unknown gold labels (not scored):", res["unknown_labels"])
    if res.get("unscored_predictions"):
        print("predictions of types absent from the gold file:", res["unscored_predictions"])
    print(
        f"latency p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms, {res['msgs_per_s']} msgs/s, "
        f"p50 for 500-char messages {res['p50_ms_500_chars']} ms ({res['messages']} messages, one core)"
    )


def schleuse_predictor(model: Path | None, rules: bool) -> Predict:
    sys.path.insert(0, str(ROOT / "services" / "dlp"))
    from schleuse_dlp.domain.analyzer import build_default_analyzer

    analyzer = build_default_analyzer(model, use_name_rules=rules)

    def predict(text: str) -> list[tuple[int, int, str]]:
        return [(s.start, s.end, s.entity_type) for s in analyzer.analyze(text).spans]

    return predict


def presidio_predictor(model: Path, threshold: float) -> tuple[Predict, str]:
    """Presidio configured for German; see bench/presidio_de.py for what that means here."""
    sys.path.insert(0, str(ROOT / "bench"))
    from presidio_de import build_presidio

    analyzer, note = build_presidio(model, threshold)

    def predict(text: str) -> list[tuple[int, int, str]]:
        out = []
        for r in analyzer.analyze(text=text, language="de"):
            typ = PRESIDIO_TYPES.get(r.entity_type, r.entity_type)
            if typ:
                out.append((r.start, r.end, typ))
        return out

    return predict, note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", type=Path)
    ap.add_argument("--model", type=Path, default=ROOT / "services/dlp/schleuse_dlp/models/ner_de.crfsuite")
    ap.add_argument("--no-ner", action="store_true", help="rules and gazetteers only")
    ap.add_argument("--no-rules", action="store_true", help="NER without the name rules")
    ap.add_argument("--no-presidio", action="store_true")
    ap.add_argument("--presidio-spacy-model", type=Path, default=ROOT / ".dev/models/presidio_de_spacy")
    ap.add_argument("--presidio-threshold", type=float, default=0.4, help="presidio's score threshold")
    args = ap.parse_args()
    rows = load(args.file)
    model = None if args.no_ner else args.model
    ours = run("schleuse-dlp", schleuse_predictor(model, not args.no_rules), rows)
    final = dict(ours)
    if not args.no_presidio:
        try:
            predict, note = presidio_predictor(args.presidio_spacy_model, args.presidio_threshold)
        except ImportError as exc:
            print(f"\npresidio comparison skipped: {exc} (presidio-analyzer comes with `make install`)")
        else:
            print(f"\npresidio: {note}")
            theirs = run("presidio-analyzer (de)", predict, rows)
            final["presidio"] = theirs
            final["presidio_note"] = note
            if theirs["p50_ms"]:
                final["speedup_p50"] = round(theirs["p50_ms"] / ours["p50_ms"], 1)
                final["speedup_msgs_per_s"] = round(ours["msgs_per_s"] / theirs["msgs_per_s"], 1)
    print(json.dumps(final, ensure_ascii=False))


if __name__ == "__main__":
    main()
