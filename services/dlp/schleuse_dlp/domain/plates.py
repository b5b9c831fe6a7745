"""German vehicle registration district codes (Unterscheidungszeichen), current and common legacy ones."""

from pathlib import Path

_FILE = Path(__file__).resolve().parent.parent / "data" / "plate_codes_de.txt"

DISTRICT_CODES = frozenset(line.strip() for line in _FILE.read_text(encoding="utf-8").splitlines() if line.strip())
