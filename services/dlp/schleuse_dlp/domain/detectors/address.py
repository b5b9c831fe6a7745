"""German postal addresses: street + house number, postcode + city, and the two joined."""

import re
from collections.abc import Iterator

from schleuse_dlp.domain.spans import ADDRESS, Span

_STREET_SUFFIX = (
    r"(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee|steig|pfad|markt|"
    r"hof|graben|berg|promenade|kai|zeile|stieg|tor|wall|feld|garten|park|brücke|anger|höhe|siedlung)"
)
_CAP = r"[A-ZÄÖÜ][a-zäöüß]+"
_STREET = (
    rf"(?:(?:{_CAP}-)?[A-ZÄÖÜ][a-zäöüß-]*{_STREET_SUFFIX}"  # Hauptstraße, Karl-Marx-Allee
    rf"|(?:Alte|Alter|Neue|Neuer|Lange|Große|Kleine|Obere|Untere|Hohe|Breite|Am|An der|Auf dem)\s"
    rf"[A-ZÄÖÜ][a-zäöüß-]*{_STREET_SUFFIX}"
    rf"|{_CAP}(?:-{_CAP})*-(?:Straße|Strasse|Str\.|Weg|Gasse|Platz|Allee|Ring|Damm|Ufer|Chaussee|Steig|Pfad|Markt)"
    rf"|(?:Am|An der|An den|Im|In der|Auf der|Zum|Zur|Unter den|Alte|Alter|Neue|Neuer)\s{_CAP}"
    rf"|(?:{_CAP}\s)?{_CAP}\s(?:Straße|Str\.|Weg|Platz|Allee|Ring|Damm|Gasse))"
)
_HOUSE_NUMBER = r"\d{1,4}(?:\s?[a-hA-H](?![a-zäöüß]))?(?:\s?[-\u2013/]\s?\d{1,4}[a-h]?)?"
_CITY = (
    rf"(?:(?:Bad|Sankt|St\.|Groß|Klein|Neu|Alt|Hohen|Ober|Unter|Nieder|Markt|Stadt|Königs|[A-ZÄÖÜ][a-zäöü]+isch)\s)?"
    rf"{_CAP}"
    rf"(?:(?:[-\s](?:am|an der|im|in|bei|ob der|a\.\s?d\.|i\.\s?Br\.)\s{_CAP})|(?:[-/]{_CAP}))*"
    rf"(?:\s\({_CAP}\))?"
)
_POSTCODE = r"(?<!\d)(?:D-)?(?:0[1-9]|[1-9]\d)\d{3}(?!\d)"

_STREET_RE = re.compile(rf"(?<![\wÄÖÜäöüß-]){_STREET}\s{_HOUSE_NUMBER}(?![\d])")
_CITY_RE = re.compile(rf"{_POSTCODE}\s{_CITY}")
_FIVE_DIGITS = re.compile(r"\d{5}")  # a postcode has five: a cheap test before the costly scan
# nouns that follow 5-digit counts and are not cities
_NOT_CITIES = frozenset(
    [
        "Euro",
        "EUR",
        "Dollar",
        "Franken",
        "Stück",
        "Menschen",
        "Einwohner",
        "Mitarbeiter",
        "Mitarbeitende",
        "Besucher",
        "Kilometer",
        "Meter",
        "Tonnen",
        "Jahre",
        "Jahren",
        "Tage",
        "Tagen",
        "Stunden",
        "Punkte",
        "Punkten",
        "Exemplare",
        "Exemplaren",
        "Zuschauer",
        "Mitglieder",
        "Mitgliedern",
        "Fans",
        "Studenten",
        "Studierende",
        "Personen",
        "Einheiten",
        "Fahrzeuge",
        "Autos",
        "Euro-Scheine",
        "Stimmen",
        "Kunden",
        "Nutzer",
        "Downloads",
        "Seiten",
        "Soldaten",
        "Opfer",
        "Haushalte",
        "Haushalten",
        "Wohnungen",
        "Bücher",
        "Liter",
        "Hektar",
    ]
)


def find_addresses(text: str) -> Iterator[Span]:
    """Street with number, postcode with city, merged when they form one address."""
    streets = [(m.start(), m.end()) for m in _STREET_RE.finditer(text)]
    cities: list[tuple[int, int]] = []
    for m in _CITY_RE.finditer(text) if _FIVE_DIGITS.search(text) else ():
        city = m.group().split(None, 1)[1]
        if city.split()[0].split("-")[0] in _NOT_CITIES:
            continue
        cities.append((m.start(), m.end()))
    parts = sorted(streets + cities)
    merged: list[tuple[int, int]] = []
    for start, end in parts:
        if merged and 0 <= start - merged[-1][1] <= 3 and re.fullmatch(r"[,\s]*", text[merged[-1][1] : start]):
            merged[-1] = (merged[-1][0], end)
        elif merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    for start, end in merged:
        yield Span(start, end, ADDRESS, 0.95, "address")


class AddressDetector:
    """Postal addresses."""

    name = "address"

    def detect(self, text: str, language: str) -> list[Span]:
        """All address spans in the text."""
        return list(find_addresses(text))
