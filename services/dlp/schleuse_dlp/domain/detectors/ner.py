"""Statistical NER (PERSON/LOCATION/ORG): a linear-chain CRF over hand-written features, via python-crfsuite.

The model is trained by `python -m schleuse_dlp.training` (make models) on GermEval 2014 data; the
feature function below is shared by training and inference so they can never drift apart.
"""

import re
from pathlib import Path

import pycrfsuite

from schleuse_dlp.domain.gazetteer import Gazetteer
from schleuse_dlp.domain.spans import LOCATION, ORG, PERSON, Span
from schleuse_dlp.domain.tokens import Token, tokenize

# Acronyms of the trade that the model may mistake for organisations; never personal data.
NOT_ENTITIES_WORDS = """
    BIC IBAN IP API URL PDF ID SV KV PIN TAN PLZ USt MwSt GmbH AG KG CEO CTO IT HR FAQ SWIFT VPN
    WLAN SMS E-Mail Mail Email DSGVO GDPR KI AI LLM ChatGPT Tel Fax Nr
"""
NOT_ENTITIES = frozenset(NOT_ENTITIES_WORDS.split())
LABELS = {"PER": PERSON, "LOC": LOCATION, "ORG": ORG}
TITLE_CUES = frozenset(
    [
        "herr",
        "herrn",
        "frau",
        "dr",
        "prof",
        "mr",
        "mrs",
        "ms",
        "miss",
        "sir",
        "dame",
        "kollege",
        "kollegin",
        "familie",
        "fam",
        "dipl",
        "ing",
    ]
)
_SENT_END = frozenset(".!?:;\"'„“()[]-\u2013")
_SHAPE_UPPER = re.compile(r"[A-ZÄÖÜ]+")
_SHAPE_LOWER = re.compile(r"[a-zäöüß]+")
_SHAPE_DIGIT = re.compile(r"\d+")


def _shape(word: str) -> str:
    s = _SHAPE_UPPER.sub("X", word)
    s = _SHAPE_LOWER.sub("x", s)
    return _SHAPE_DIGIT.sub("d", s)


def _base(word: str) -> str:
    """Strip a genitive s ("Müllers" -> "Müller") when the word is long enough to carry one."""
    return word[:-1] if len(word) > 4 and word[-1] == "s" and word[-2] not in "sxzß" else word


def _is_compound_noun(word: str, nouns: frozenset[str]) -> bool:
    """German compounds: the word ends in a known common noun ("Seidenfäden" -> "Fäden")."""
    return any((word[j].upper() + word[j + 1 :]) in nouns for j in range(2, len(word) - 3))


def _bucket(rank: int | None) -> str:
    if rank is None:
        return ""
    if rank < 100:
        return "0"
    if rank < 1000:
        return "1"
    return "2"


def token_features(tokens: list[Token], gazetteer: Gazetteer) -> list[list[str]]:
    """CRF features for each token: word, affixes, shape, name-list ranks and a +-2 token window."""
    words = [t.text for t in tokens]
    lowers = [w.lower() for w in words]
    shapes = [_shape(w) for w in words]
    fn = [_bucket(gazetteer.first_rank(_base(w))) if w[:1].isupper() else "" for w in words]
    ln = [_bucket(gazetteer.last_rank(_base(w))) if w[:1].isupper() else "" for w in words]
    n = len(tokens)
    out: list[list[str]] = []
    for i in range(n):
        w, lw = words[i], lowers[i]
        f = ["b", "w=" + lw, "s4=" + lw[-4:], "s3=" + lw[-3:], "s2=" + lw[-2:], "p3=" + lw[:3], "sh=" + shapes[i]]
        if len(w) > 1 and w.isupper():
            f.append("up")
        if i == 0 or words[i - 1] in _SENT_END:
            f.append("bos")
        if fn[i]:
            f.append("fn=" + fn[i])
        if ln[i]:
            f.append("ln=" + ln[i])
        if fn[i] and ln[i]:
            f.append("fnln")
        if w[:1].isupper():
            if w in gazetteer.common_nouns:
                f.append("noun")
            elif _is_compound_noun(w, gazetteer.common_nouns):
                f.append("cnoun")
            elif lw in gazetteer.common_nouns:
                pass
            elif w.lower() != w and not fn[i] and not ln[i] and w not in gazetteer.toponyms:
                f.append("unk-cap")
        if w in gazetteer.toponyms:
            f.append("topo")
        if i > 0:
            f += ["-1w=" + lowers[i - 1], "-1sh=" + shapes[i - 1]]
            if fn[i - 1]:
                f.append("-1fn=" + fn[i - 1])
            if words[i - 1] in gazetteer.common_nouns:
                f.append("-1noun")
            if lowers[i - 1] in TITLE_CUES:
                f.append("-1cue")
            if i > 1:
                f.append("-2w=" + lowers[i - 2])
                if lowers[i - 2] in TITLE_CUES:
                    f.append("-2cue")
        else:
            f.append("-1w=^")
        if i < n - 1:
            f += ["+1w=" + lowers[i + 1], "+1sh=" + shapes[i + 1]]
            if ln[i + 1]:
                f.append("+1ln=" + ln[i + 1])
            if i < n - 2:
                f.append("+2w=" + lowers[i + 2])
        else:
            f.append("+1w=$")
        out.append(f)
    return out


def bio_to_spans(tokens: list[Token], tags: list[str], score: float = 0.9) -> list[Span]:
    """Turn B-/I- tags back into character spans."""
    spans: list[Span] = []
    start = end = -1
    label = ""
    for tok, tag in [*zip(tokens, tags, strict=True), (Token("", 0, 0), "O")]:
        kind, _, lab = tag.partition("-")
        if label and (kind != "I" or lab != label):
            spans.append(Span(start, end, LABELS[label], score, "ner"))
            label = ""
        if kind == "B" or (kind == "I" and not label):
            start, end, label = tok.start, tok.end, lab
        elif kind == "I":
            end = tok.end
    return spans


class CrfNerDetector:
    """PERSON/LOCATION/ORG from a python-crfsuite model file."""

    name = "ner-crf"

    def __init__(self, model_path: Path, gazetteer: Gazetteer) -> None:
        self._tagger = pycrfsuite.Tagger()
        self._tagger.open(str(model_path))
        self._gazetteer = gazetteer

    def detect(self, text: str, language: str) -> list[Span]:
        """Tag the whole text as one sequence and return the entity spans."""
        tokens = tokenize(text)
        if not tokens:
            return []
        tags = self._tagger.tag(token_features(tokens, self._gazetteer))
        return [s for s in bio_to_spans(tokens, tags) if text[s.start : s.end] not in NOT_ENTITIES]
