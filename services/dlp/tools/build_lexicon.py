"""Extract a German lexicon from the `german-nouns` package (Wiktionary DE, CC BY-SA 4.0).

Run once by a maintainer (outputs are committed, see schleuse_dlp/data/NOTICE.md):
    python -m venv /tmp/nd && /tmp/nd/bin/pip install german-nouns
    /tmp/nd/bin/python services/dlp/tools/build_lexicon.py services/dlp/schleuse_dlp/data
Writes common-noun word forms, toponyms, and Wiktionary first and last names, one per line.
"""

import csv
import sys
from pathlib import Path

import german_nouns

SOURCE = Path(next(iter(german_nouns.__path__))) / "nouns.csv"


def main() -> None:
    target = Path(sys.argv[1])
    nouns: set[str] = set()
    topo: set[str] = set()
    first: set[str] = set()
    last: set[str] = set()
    with SOURCE.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            lemma = row["lemma"]
            if not lemma or not lemma[0].isupper():
                continue
            pos = set(row["pos"].split(","))
            if "Toponym" in pos:
                topo.add(lemma)
            if "Vorname" in pos:
                first.add(lemma)
            if "Nachname" in pos:
                last.add(lemma)
            if pos == {"Substantiv"}:
                for key, value in row.items():
                    if key not in ("lemma", "pos") and value and value[:1].isupper() and " " not in value:
                        nouns.add(value)
    # a lemma that is also a name or a place is ambiguous: keep it out of the common-noun list
    nouns -= first | last | topo
    for name, words in (
        ("nouns_de.txt", nouns),
        ("toponyms_de.txt", topo),
        ("wikt_first_names.txt", first),
        ("wikt_last_names.txt", last),
    ):
        (target / name).write_text("\n".join(sorted(words)) + "\n", encoding="utf-8")
        print(name, len(words))


if __name__ == "__main__":
    main()
