"""Extract first- and last-name gazetteers from the `names-dataset` package (MIT) into small text files.

Run once by a maintainer (the output is committed; `names-dataset` is not a runtime dependency):
    python -m venv /tmp/nd && /tmp/nd/bin/pip install names-dataset
    /tmp/nd/bin/python services/dlp/tools/build_gazetteers.py services/dlp/schleuse_dlp/data
Each output line is `name<TAB>best_rank` (lower rank = more common in one of the countries).
"""

import sys
from pathlib import Path

from names_dataset import NameDataset

# German-speaking countries first, then the origins of most names met in German offices.
COUNTRIES = {
    "DE": 6000,
    "AT": 3000,
    "CH": 3000,
    "TR": 1500,
    "PL": 1500,
    "IT": 1500,
    "RU": 1000,
    "FR": 1500,
    "ES": 1000,
    "GB": 1500,
    "US": 1500,
    "NL": 1000,
    "GR": 800,
    "HR": 800,
    "RS": 800,
    "RO": 800,
    "UA": 800,
    "SY": 500,
    "IR": 500,
    "PT": 800,
    "VN": 300,
}


def extract(nd: NameDataset, first: bool) -> dict[str, int]:
    out: dict[str, int] = {}
    for country, n in COUNTRIES.items():
        top = nd.get_top_names(n=n, use_first_names=first, country_alpha2=country)
        lists = top.get(country, {})
        groups = lists.values() if first else [lists]
        for names in groups:
            for rank, name in enumerate(names):
                if not name or len(name) < 2 or not name[0].isalpha():
                    continue
                out[name] = min(out.get(name, 10**6), rank)
    return out


def main() -> None:
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    nd = NameDataset()
    for first, fname in ((True, "first_names.tsv"), (False, "last_names.tsv")):
        names = extract(nd, first)
        lines = [f"{k}\t{v}" for k, v in sorted(names.items())]
        (target / fname).write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(fname, len(lines))


if __name__ == "__main__":
    main()
