"""Statistical NER (PERSON/LOCATION/ORG): a linear-chain CRF over hand-written features, via python-crfsuite.

The model is trained by `python -m schleuse_dlp.training` (make models) on GermEval 2014 data; the
feature function below is shared by training and inference so they can never drift apart.
"""

import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

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
# A PERSON span is dropped when a capitalised word in it has a lower marginal probability of being
# part of a name (B-PER + I-PER) than this; chosen by cross-validation inside the training part.
PERSON_MIN_MARGINAL = 0.5
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


# Left context that announces a person: verbs of speech and roles ("sagte Müller", "Trainer Klopp").
SPEECH_CUES = frozenset(
    [
        "sagte",
        "sagt",
        "sagten",
        "meinte",
        "meint",
        "erklärte",
        "erklärt",
        "betonte",
        "betont",
        "kritisierte",
        "kritisiert",
        "berichtete",
        "berichtet",
        "fügte",
        "ergänzte",
        "ergänzt",
        "sprach",
        "spricht",
        "schrieb",
        "schreibt",
        "so",
        "laut",
        "sowie",
        "forderte",
        "fordert",
        "warnte",
        "warnt",
        "kündigte",
        "räumte",
        "teilte",
        "stellte",
        "wies",
        "gab",
        "fragte",
        "antwortete",
        "bestätigte",
    ]
)
ROLE_SUFFIXES = (
    "präsident",
    "präsidentin",
    "minister",
    "ministerin",
    "kanzler",
    "kanzlerin",
    "trainer",
    "trainerin",
    "regisseur",
    "autor",
    "autorin",
    "sänger",
    "sängerin",
    "spieler",
    "spielerin",
    "meister",
    "meisterin",
    "chef",
    "chefin",
    "sprecher",
    "sprecherin",
    "leiter",
    "leiterin",
    "kollege",
    "kollegin",
    "sohn",
    "tochter",
    "bruder",
    "schwester",
    "vater",
    "mutter",
    "frau",
    "mann",
    "könig",
    "königin",
    "kaiser",
    "papst",
    "bischof",
    "graf",
    "gräfin",
    "herzog",
    "fürst",
    "prinz",
    "prinzessin",
    "maler",
    "dichter",
    "komponist",
    "schauspieler",
    "schauspielerin",
    "musiker",
    "politiker",
    "fahrer",
    "stürmer",
    "torwart",
    "direktor",
    "vorsitzende",
    "vorsitzender",
    "abgeordnete",
    "anwalt",
    "professor",
    "dozent",
    "pfarrer",
)
PARTICLES = frozenset(
    ["von", "van", "de", "der", "zu", "vom", "da", "di", "del", "den", "ten", "ter", "la", "le", "bin", "ibn"]
)


def _likeness_bucket(score: float) -> str:
    for bound, name in ((-1.0, "0"), (0.0, "1"), (0.5, "2"), (1.0, "3"), (2.0, "4")):
        if score < bound:
            return name
    return "5"


def _zipf_bucket(zipf: float) -> str:
    """Frequency of the lowercased word: "0" rare or unknown, else the integer Zipf value (1-7)."""
    return str(min(int(zipf), 7)) if zipf else "0"


def _word_class(w: str, fn: str, ln: str, gazetteer: Gazetteer) -> str:
    """A coarse class of a token for neighbour features."""
    if not w[:1].isupper():
        return "l" if w[:1].isalpha() else ("d" if w[:1].isdigit() else "p")
    if fn or ln:
        return "N"
    if w in gazetteer.common_nouns:
        return "C"
    if w in gazetteer.toponyms:
        return "T"
    return "U"


class _Word(NamedTuple):
    """What the features need to know about one word, independent of its neighbours (cached)."""

    own: tuple[str, ...]
    lower: str
    shape: str
    fn: str
    ln: str
    cls: str
    ng: str
    noun: bool
    zf: str


_CACHE_MAX = 50_000


def _word_info(w: str, gazetteer: Gazetteer) -> _Word:
    cache = gazetteer.word_cache
    info = cache.get(w)
    if info is not None:
        return info  # type: ignore[no-any-return]
    lw = w.lower()
    shape = _shape(w)
    upper_first = w[:1].isupper()
    fn = _bucket(gazetteer.first_rank(_base(w))) if upper_first else ""
    ln = _bucket(gazetteer.last_rank(_base(w))) if upper_first else ""
    cls = _word_class(w, fn, ln, gazetteer)
    ng = _likeness_bucket(gazetteer.name_likeness(_base(w))) if upper_first and w[1:2].islower() else ""
    zf = _zipf_bucket(gazetteer.zipf(w)) if w[:1].isalpha() else ""
    f = [
        "b",
        "w=" + lw,
        "s5=" + lw[-5:],
        "s4=" + lw[-4:],
        "s3=" + lw[-3:],
        "s2=" + lw[-2:],
        "s1=" + lw[-1:],
        "p1=" + w[:1],
        "p2=" + lw[:2],
        "p3=" + lw[:3],
        "p4=" + lw[:4],
        "sh=" + shape,
        "c=" + cls,
        "len=" + str(min(len(w), 10)),
    ]
    if len(w) > 1 and w.isupper():
        f.append("up")
    if ng:
        f += ["ng=" + ng, "ng|c=" + ng + cls]
    if zf:
        f += ["zf=" + zf, "zf|c=" + zf + cls]
    if "-" in w:
        f.append("hyph")
    if fn:
        f.append("fn=" + fn)
    if ln:
        f.append("ln=" + ln)
    if fn and ln:
        f.append("fnln")
    if upper_first:
        if w in gazetteer.common_nouns:
            f.append("noun")
        elif _is_compound_noun(w, gazetteer.common_nouns):
            f.append("cnoun")
        elif lw in gazetteer.common_nouns:
            pass
        elif lw != w and not fn and not ln and w not in gazetteer.toponyms:
            f.append("unk-cap")
        if "-" in w and any(
            gazetteer.last_rank(x) is not None or gazetteer.first_rank(x) is not None for x in w.split("-")
        ):
            f.append("hyph-name")
    if w in gazetteer.toponyms:
        f.append("topo")
    if lw in PARTICLES:
        f.append("part")
    info = _Word(tuple(f), lw, shape, fn, ln, cls, ng, w in gazetteer.common_nouns, zf)
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[w] = info
    return info


def token_features(tokens: list[Token], gazetteer: Gazetteer) -> list[list[str]]:
    """CRF features for each token: word, affixes, shape, name-list ranks, cues and a +-2 token window."""
    words = [t.text for t in tokens]
    info = [_word_info(w, gazetteer) for w in words]
    n = len(tokens)
    out: list[list[str]] = []
    for i in range(n):
        me = info[i]
        lw = me.lower
        f = list(me.own)
        if i > 1 and _is_initial(tokens, i - 2):
            f.append("-1init")  # "W. Müller": the dot ends an initial, not a sentence
        elif i == 0 or words[i - 1] in _SENT_END:
            f.append("bos")
            if me.zf:
                f.append("bos|zf=" + me.zf + me.cls)
        for d in (-2, -1, 1, 2):
            j = i + d
            if j < 0 or j >= n:
                if j in (-1, n):
                    f.append(f"{d}w={'^' if j < 0 else '$'}")
                continue
            other = info[j]
            f.append(f"{d}w={other.lower}")
            f.append(f"{d}c={other.cls}")
            if d in (-1, 1):
                f.append(f"{d}sh={other.shape}")
                if other.fn:
                    f.append(f"{d}fn={other.fn}")
                if other.ln:
                    f.append(f"{d}ln={other.ln}")
                if other.ng:
                    f.append(f"{d}ng={other.ng}")
                if other.zf:
                    f.append(f"{d}zf={other.zf}")
        if i > 0:
            prev = info[i - 1].lower
            f.append("-1s3=" + prev[-3:])
            f.append("-1w|w=" + prev + "|" + lw)
            if info[i - 1].noun:
                f.append("-1noun")
            if prev in TITLE_CUES:
                f.append("-1cue")
            if prev in SPEECH_CUES:
                f.append("-1speech")
            if prev in PARTICLES:
                f.append("-1part")
            if prev.endswith(ROLE_SUFFIXES):
                f.append("-1role")
            if i > 1:
                prev2 = info[i - 2].lower
                if prev2 in TITLE_CUES:
                    f.append("-2cue")
                if prev2 in SPEECH_CUES:
                    f.append("-2speech")
                if prev2.endswith(ROLE_SUFFIXES):
                    f.append("-2role")
        if i < n - 1:
            nxt = info[i + 1].lower
            f.append("w|+1w=" + lw + "|" + nxt)
            if nxt in SPEECH_CUES:
                f.append("+1speech")
            if nxt in PARTICLES:
                f.append("+1part")
        out.append(f)
    return out


class _Blocks(NamedTuple):
    """One word's feature strings in every role it can play in a +-2 window, as the tagger gets them.

    Each tuple holds, in the order `token_features` emits them, only the attributes the model knows
    (crfsuite ignores the others).
    """

    lower: str
    own: tuple[str, ...]  # the word's own features
    bos: tuple[str, ...]  # when the word starts a sentence
    as_m2: tuple[str, ...]  # the word seen from two tokens later ("-2w=...")
    as_m1: tuple[str, ...]  # ... from the next token ("-1w=...", "-1sh=...")
    as_p1: tuple[str, ...]  # ... from the previous token ("1w=...")
    as_p2: tuple[str, ...]  # ... from two tokens earlier ("2w=...")
    prev_head: tuple[str, ...]  # "-1s3=..." of the next token
    prev_tail: tuple[str, ...]  # "-1noun", "-1cue", ... of the next token
    prev2: tuple[str, ...]  # "-2cue", ... of the token after next
    next_tail: tuple[str, ...]  # "+1speech", "+1part" of the previous token


def _word_blocks(w: str, gazetteer: Gazetteer, known: frozenset[str]) -> _Blocks:
    """The per-word parts of `token_features`, filtered by the model's attributes (see `FastFeatures`)."""
    me = _word_info(w, gazetteer)
    lw, cls, shape = me.lower, me.cls, me.shape
    extra = []  # fn/ln/ng/zf of a +-1 neighbour, without the offset prefix
    if me.fn:
        extra.append("fn=" + me.fn)
    if me.ln:
        extra.append("ln=" + me.ln)
    if me.ng:
        extra.append("ng=" + me.ng)
    if me.zf:
        extra.append("zf=" + me.zf)
    cue, speech, part, role = lw in TITLE_CUES, lw in SPEECH_CUES, lw in PARTICLES, lw.endswith(ROLE_SUFFIXES)
    prev_tail = [
        name
        for name, on in (("-1noun", me.noun), ("-1cue", cue), ("-1speech", speech), ("-1part", part), ("-1role", role))
        if on
    ]
    prev2 = [name for name, on in (("-2cue", cue), ("-2speech", speech), ("-2role", role)) if on]
    next_tail = [name for name, on in (("+1speech", speech), ("+1part", part)) if on]
    bos = ["bos", "bos|zf=" + me.zf + cls] if me.zf else ["bos"]
    near1 = ["w=" + lw, "c=" + cls, "sh=" + shape, *extra]
    # the neighbour blocks of token i use the word at i+d, so the word is "-d" away from that token
    return _Blocks(
        lower=lw,
        own=_keep(me.own, known),
        bos=_keep(bos, known),
        as_m2=_keep(("-2w=" + lw, "-2c=" + cls), known),
        as_m1=_keep(["-1" + x for x in near1], known),
        as_p1=_keep(["1" + x for x in near1], known),
        as_p2=_keep(("2w=" + lw, "2c=" + cls), known),
        prev_head=_keep(("-1s3=" + lw[-3:],), known),
        prev_tail=_keep(prev_tail, known),
        prev2=_keep(prev2, known),
        next_tail=_keep(next_tail, known),
    )


def _keep(feats: Sequence[str], known: frozenset[str]) -> tuple[str, ...]:
    return tuple([x for x in feats if x in known])


class FastFeatures:
    """`token_features` for one model, minus the attributes the model does not know, built from per-word caches.

    crfsuite skips attributes missing from the model, so the tagger's output (tags and marginals) is
    the same as with the full feature lists; tests check that this equals the filtered `token_features`.
    """

    def __init__(self, gazetteer: Gazetteer, known: frozenset[str]) -> None:
        self._gazetteer = gazetteer
        self._known = known
        self._cache: dict[str, _Blocks] = {}
        self._init = _keep(("-1init",), known)
        self._edge = {name: _keep((name,), known) for name in ("-2w=^", "-1w=^", "1w=$", "2w=$")}

    def _blocks(self, w: str) -> _Blocks:
        b = self._cache.get(w)
        if b is None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            b = self._cache[w] = _word_blocks(w, self._gazetteer, self._known)
        return b

    def __call__(self, tokens: list[Token]) -> list[list[str]]:
        """Per token: the model's known features, in `token_features` order."""
        known = self._known
        edge = self._edge
        blocks = self._blocks
        words = [t.text for t in tokens]
        info = [blocks(w) for w in words]
        n = len(tokens)
        out: list[list[str]] = []
        for i in range(n):
            me = info[i]
            lw = me.lower
            f = list(me.own)
            if i > 1 and _is_initial(tokens, i - 2):
                f += self._init
            elif i == 0 or words[i - 1] in _SENT_END:
                f += me.bos
            if i > 1:
                f += info[i - 2].as_m2
            elif i == 1:
                f += edge["-2w=^"]
            if i > 0:
                f += info[i - 1].as_m1
            else:
                f += edge["-1w=^"]
            if i < n - 1:
                f += info[i + 1].as_p1
            else:
                f += edge["1w=$"]
            if i < n - 2:
                f += info[i + 2].as_p2
            elif i == n - 2:
                f += edge["2w=$"]
            if i > 0:
                prev = info[i - 1]
                f += prev.prev_head
                pair = "-1w|w=" + prev.lower + "|" + lw
                if pair in known:
                    f.append(pair)
                f += prev.prev_tail
                if i > 1:
                    f += info[i - 2].prev2
            if i < n - 1:
                nxt = info[i + 1]
                pair = "w|+1w=" + lw + "|" + nxt.lower
                if pair in known:
                    f.append(pair)
                f += nxt.next_tail
            out.append(f)
        return out


def _is_initial(tokens: list[Token], i: int) -> bool:
    """Tokens i, i+1 are an initial such as "W." (one capital letter directly followed by a dot)."""
    return (
        i >= 0
        and i + 1 < len(tokens)
        and len(tokens[i].text) == 1
        and tokens[i].text.isupper()
        and tokens[i + 1].text == "."
        and tokens[i + 1].start == tokens[i].end
    )


def repair_person_tags(tokens: list[Token], tags: list[str], gazetteer: Gazetteer) -> list[str]:
    """Fix typical PERSON boundary slips of the CRF with name lists and German spelling.

    - a lowercase word inside a name that is no particle ends it ("Untermann ließ Blaszkiewitz");
    - a leading common noun or role is not part of the name ("Gartenhistoriker Ernest de Ganay");
    - two names joined by particles are one ("Giacomo" della "Porta");
    - initials before a name belong to it ("W. Müller").
    """
    tags = list(tags)
    n = len(tokens)
    for i in range(1, n):
        if tags[i] == "I-PER" and tokens[i].text[:1].islower() and tokens[i].text not in PARTICLES:
            tags[i] = "O"
            if i + 1 < n and tags[i + 1] == "I-PER":
                tags[i + 1] = "B-PER"
    for i in range(n - 1):
        if tags[i] == "B-PER" and tags[i + 1] == "I-PER":
            w = tokens[i].text
            if (
                (
                    w in gazetteer.common_nouns
                    or w.lower().endswith(ROLE_SUFFIXES)
                    or _is_compound_noun(w, gazetteer.common_nouns)
                )
                and gazetteer.first_rank(w) is None
                and gazetteer.last_rank(w) is None
            ):
                tags[i] = "O"
                tags[i + 1] = "B-PER"
    for i in range(n):
        if tags[i] != "B-PER":
            continue
        j = i - 1
        while j >= 0 and tags[j] == "O" and tokens[j].text in PARTICLES:
            j -= 1
        if j < i - 1 and j >= 0 and tags[j].endswith("-PER"):
            for k in range(j + 1, i + 1):
                tags[k] = "I-PER"
            continue
        while _is_initial(tokens, i - 2) and tags[i - 2] == "O" and tags[i - 1] == "O":
            tags[i - 2], tags[i - 1], tags[i] = "B-PER", "I-PER", "I-PER"
            i -= 2
    return tags


def bio_to_spans(tokens: list[Token], tags: list[str], score: float = 0.9) -> list[Span]:
    """Turn B-/I- tags back into character spans."""
    spans: list[Span] = []
    start = end = -1
    label = ""
    for tok, tag in [*zip(tokens, tags, strict=True), (Token("", 0, 0), "O")]:
        kind, _, lab = tag.partition("-")
        if label and (kind != "I" or lab != label):
            if label in LABELS:
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
        self._features = FastFeatures(gazetteer, frozenset(self._tagger.info().attributes))
        self._per_labels = [label for label in ("B-PER", "I-PER") if label in self._tagger.labels()]
        gazetteer.name_likeness("Name")  # build the n-gram table now, not on the first message
        gazetteer.zipf("Name")  # and load the word frequencies

    def detect(self, text: str, language: str) -> list[Span]:
        """Tag the whole text as one sequence and return the entity spans."""
        tokens = tokenize(text)
        if not tokens:
            return []
        tags = self._tagger.tag(self._features(tokens))
        tags = repair_person_tags(tokens, tags, self._gazetteer)
        return [
            s
            for s in bio_to_spans(tokens, tags)
            if text[s.start : s.end] not in NOT_ENTITIES and (s.entity_type != PERSON or self._confident(tokens, s))
        ]

    def _confident(self, tokens: list[Token], span: Span) -> bool:
        """Keep a PERSON span only if every capitalised word in it is a name with some probability."""
        if not self._per_labels:
            return True
        for i, tok in enumerate(tokens):
            if (
                tok.start >= span.start
                and tok.end <= span.end
                and tok.text[:1].isupper()
                and sum(self._tagger.marginal(label, i) for label in self._per_labels) < PERSON_MIN_MARGINAL
            ):
                return False
        return True
