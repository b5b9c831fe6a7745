"""First- and last-name gazetteers (derived from the names-dataset package, MIT) and German stop words."""

import gzip
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

# Capitalised words that are frequent in German text and also appear in the noisy name lists.
STOP_WORDS_WORDS = """
    der die das den dem des ein eine einen einem einer eines und oder aber doch mit von vom zu zum zur
    im in am an auf aus bei nach über unter vor hinter neben zwischen durch für gegen ohne um bis seit
    ab als wie wenn dass daß weil ob so auch noch nur schon sehr mehr viel viele alle alles jeder jede
    jedes kein keine ich du er sie es wir ihr mein meine dein sein seine unser euer ihre diese dieser
    dieses jener man hier da dort dann denn damit dabei dazu darauf heute morgen gestern bitte danke
    hallo liebe lieber sehr herr frau herrn dr prof ing dipl mfg mit freundlichen grüßen gruß grüße
    viele beste team abteilung montag dienstag mittwoch donnerstag freitag samstag sonntag januar
    februar märz april mai juni juli august september oktober november dezember stadt land haus straße
    kirche schule bank post polizei euro jahr jahre monat woche tag zeit welt leben liebe glück sonne
    see berg wald feld dorf mark the a an of and or to in on at for with by from is are was be this
    that my your our their his her mr mrs ms dear hello hi thanks regards best kind sincerely yours
    team
"""
STOP_WORDS = frozenset(STOP_WORDS_WORDS.split())
# Words rarer than this Zipf frequency (x 10) are left out of the frequency table (memory).
ZIPF_FLOOR_X10 = 15


@dataclass(frozen=True)
class Gazetteer:
    """Name lists: name -> best popularity rank (0 = most common) in any of the covered countries."""

    first_names: dict[str, int]
    last_names: dict[str, int]
    common_nouns: frozenset[str] = field(default_factory=frozenset)
    toponyms: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def load(cls, data_dir: Path = DATA_DIR) -> "Gazetteer":
        """Read the shipped name lists and the German lexicon (Wiktionary nouns and toponyms)."""
        first = _read(data_dir / "first_names.tsv")
        last = _read(data_dir / "last_names.tsv")
        # Wiktionary's curated names count as common ones
        for name in _lines(data_dir / "wikt_first_names.txt"):
            first[name] = min(first.get(name, 0), 0)
        for name in _lines(data_dir / "wikt_last_names.txt"):
            last[name] = min(last.get(name, 0), 0)
        with gzip.open(data_dir / "nouns_de.txt.gz", "rt", encoding="utf-8") as fh:
            nouns = frozenset(line.rstrip("\n") for line in fh)
        return cls(first, last, nouns, frozenset(_lines(data_dir / "toponyms_de.txt")))

    @classmethod
    def empty(cls) -> "Gazetteer":
        return cls({}, {})

    def first_rank(self, token: str) -> int | None:
        """Popularity rank as a first name, None if unknown or a stop word."""
        if token.lower() in STOP_WORDS:
            return None
        return self.first_names.get(token)

    @cached_property
    def word_cache(self) -> dict[str, object]:
        """Per-word results of callers (the NER features), kept with the lists they were computed from."""
        return {}

    @cached_property
    def _ngram_log_odds(self) -> dict[str, float]:
        """Character 3/4-gram log-odds of "person name" (name lists) against "common noun" (lexicon)."""
        names = set(self.first_names) | set(self.last_names)
        in_names = Counter(g for w in names for g in _grams(w))
        in_nouns = Counter(g for w in self.common_nouns if w not in names for g in _grams(w))
        total_n, total_c = sum(in_names.values()) or 1, sum(in_nouns.values()) or 1
        vocab = len(in_names.keys() | in_nouns.keys()) or 1
        return {
            g: math.log((in_names[g] + 0.5) / (total_n + 0.5 * vocab))
            - math.log((in_nouns[g] + 0.5) / (total_c + 0.5 * vocab))
            for g in in_names.keys() | in_nouns.keys()
        }

    def name_likeness(self, token: str) -> float:
        """Mean character n-gram log-odds that a word is a person name rather than a common noun."""
        table = self._ngram_log_odds
        grams = _grams(token)
        if not grams:
            return 0.0
        return sum(map(table.get, grams, repeat(0.0, len(grams)))) / len(grams)

    @cached_property
    def _zipf_table(self) -> dict[str, int]:
        """Lowercased German word -> Zipf frequency x 10 (wordfreq, "large" list), loaded once."""
        if not self.common_nouns:  # an empty gazetteer (tests, degraded mode) has no lexicon either
            return {}
        import wordfreq  # imported here: it is needed only once the lexicon is loaded

        table: dict[str, int] = {}
        # bucket i holds the words of frequency 10^(-i/100), i.e. Zipf 9 - i/100
        for i, words in enumerate(wordfreq.get_frequency_list("de", "large")):
            zipf10 = 90 - i // 10
            if zipf10 < ZIPF_FLOOR_X10:
                break
            for w in words:
                table[w] = zipf10
        return table

    def zipf(self, token: str) -> float:
        """Zipf frequency of the lowercased word in German text (0.0 if rare or unknown)."""
        return self._zipf_table.get(token.lower(), 0) / 10

    def last_rank(self, token: str) -> int | None:
        """Popularity rank as a last name, None if unknown or a stop word."""
        if token.lower() in STOP_WORDS:
            return None
        return self.last_names.get(token)


def _grams(word: str) -> list[str]:
    w = "^" + word.lower() + "$"
    return [w[i : i + 3] for i in range(len(w) - 2)] + [w[i : i + 4] for i in range(len(w) - 3)]


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln]


def _read(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            name, _, rank = line.rstrip("\n").partition("\t")
            if name:
                out[name] = int(rank or 0)
    return out
