"""Every structured detector: valid values are found, look-alikes with broken checksums are not."""

import pytest

from schleuse_dlp.domain.analyzer import Analyzer
from schleuse_dlp.domain.checksums import (
    icao_check_digit,
    is_valid_kvnr,
    is_valid_svnr,
    kvnr_check_digit,
    svnr_check_digit,
)
from schleuse_dlp.domain.detectors.address import find_addresses
from schleuse_dlp.domain.detectors.identifiers import (
    find_bics,
    find_cards,
    find_dates_of_birth,
    find_documents,
    find_emails,
    find_health_insurance,
    find_ibans,
    find_ips,
    find_phones,
    find_plates,
    find_social_security,
    find_tax_ids,
    find_tax_numbers,
)
from schleuse_dlp.domain.detectors.secrets import find_secrets

SVNR = "12 150485 M 12" + svnr_check_digit("12150485M12")
KVNR = "A12345678" + kvnr_check_digit("A12345678")
ID_CARD = "T22000129" + icao_check_digit("T22000129")
PASSPORT = "C01X00T47" + icao_check_digit("C01X00T47")


def values(finder, text: str) -> list[str]:
    return [text[s.start : s.end] for s in finder(text)]


def broken(value: str) -> str:
    """The same value with its last digit changed: the checksum no longer holds."""
    last = value[-1]
    return value[:-1] + str((int(last) + 1) % 10)


@pytest.mark.parametrize(
    ("finder", "text", "expected"),
    [
        (find_emails, "Schreiben Sie an max.mustermann@beispiel-firma.de bitte.", "max.mustermann@beispiel-firma.de"),
        (find_phones, "Ich bin unter 030 12345678 erreichbar.", "030 12345678"),
        (find_phones, "Mobil: +49 171 2345678", "+49 171 2345678"),
        (find_phones, "Tel. (089) 12345-678", "(089) 12345-678"),
        (find_phones, "Call me at +1 202 555 0143", "+1 202 555 0143"),
        (find_ibans, "IBAN: DE89 3704 0044 0532 0130 00 danke", "DE89 3704 0044 0532 0130 00"),
        (find_ibans, "Konto DE89370400440532013000.", "DE89370400440532013000"),
        (find_ibans, "AT611904300234573201 ist österreichisch", "AT611904300234573201"),
        (find_bics, "BIC: COBADEFFXXX", "COBADEFFXXX"),
        (find_bics, "per SWIFT DEUTDEDB an uns", "DEUTDEDB"),
        (find_cards, "Karte 4111 1111 1111 1111 gültig bis 12/27", "4111 1111 1111 1111"),
        (find_cards, "Amex 378282246310005", "378282246310005"),
        (find_tax_ids, "Meine Steuer-ID lautet 86095742719.", "86095742719"),
        (find_tax_ids, "IdNr 86 095 742 719", "86 095 742 719"),
        (find_tax_numbers, "Steuernummer 181/815/08155", "181/815/08155"),
        (find_social_security, f"SV-Nummer {SVNR}", SVNR),
        (find_health_insurance, f"Versichertennummer {KVNR}", KVNR),
        (find_documents, f"Personalausweis {ID_CARD}", ID_CARD),
        (find_documents, f"Reisepass {PASSPORT}", PASSPORT),
        (find_documents, "Ausweisnummer L01X00T47 liegt vor", "L01X00T47"),
        (find_plates, "Das Auto mit Kennzeichen M-AB 1234 parkt", "M-AB 1234"),
        (find_plates, "Oldtimer HH-XY 123H", "HH-XY 123H"),
        (find_ips, "Zugriff von 192.168.10.20 um 10 Uhr", "192.168.10.20"),
        (find_ips, "IPv6 2001:db8::8a2e:370:7334 gesperrt", "2001:db8::8a2e:370:7334"),
        (find_dates_of_birth, "Max, geb. am 12.03.1985, wohnt hier", "12.03.1985"),
        (find_dates_of_birth, "Geburtsdatum: 3. Mai 1990", "3. Mai 1990"),
        (find_dates_of_birth, "Anna (* 1985-03-12) kommt", "1985-03-12"),
        (
            find_addresses,
            "Wir wohnen in der Hauptstraße 12a, 10115 Berlin seit Jahren.",
            "Hauptstraße 12a, 10115 Berlin",
        ),
        (find_addresses, "Lieferung an Karl-Marx-Allee 5", "Karl-Marx-Allee 5"),
        (find_addresses, "Postfach in 80331 München", "80331 München"),
    ],
)
def test_finds_valid_values(finder, text: str, expected: str) -> None:
    assert expected in values(finder, text)


@pytest.mark.parametrize(
    ("finder", "text"),
    [
        (find_emails, "Die Adresse ist max@@beispiel oder user@localhost"),
        (find_phones, "Bestellnummer 4711 0815 22 vom 01.02.2023"),
        (find_phones, "Die Rechnung 12345678 ist offen"),
        (find_ibans, "IBAN: DE89 3704 0044 0532 0130 01"),
        (find_bics, "Das KRANKENHAUS ist geschlossen"),
        (find_cards, "Karte 4111 1111 1111 1112"),
        (find_cards, "Seriennummer 1234 5678 9012 3456"),
        (find_tax_ids, "Steuer-ID 86095742718"),
        (find_tax_ids, "Auftrag 11111111111"),
        (find_tax_numbers, "Die Zahl 1234567890 ohne Kontext"),
        (find_social_security, f"SV-Nummer {broken(SVNR)}"),
        (find_health_insurance, f"Versichertennummer {broken(KVNR)}"),
        (find_documents, f"Code {broken(ID_CARD)} ohne Kontext"),
        (find_plates, "Der Wert QQ-AB 1234 ist kein Kennzeichen"),
        (find_ips, "Version 1.2.3.4 und die Zahl 999.1.1.1"),
        (find_ips, "Es ist 12:30:45 Uhr"),
        (find_dates_of_birth, "Der Termin am 12.03.2025 steht"),
        (find_addresses, "Wir haben 12345 Mitarbeiter und 50000 Euro"),
        (find_secrets, "Ich habe mein Passwort vergessen"),
    ],
)
def test_ignores_look_alikes(finder, text: str) -> None:
    assert values(finder, text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key sk-proj-abcdefghijklmnopqrstuvwxyz123456", "sk-proj-abcdefghijklmnopqrstuvwxyz123456"),
        ("AWS AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
        ("db postgres://admin:geheim123@db.intern:5432/x", "admin:geheim123"),
        ("https://api.example.com/v1?access_token=abc123def456&x=1", "abc123def456"),
        ("Das Passwort lautet: Sommer2024!", "Sommer2024!"),
    ],
)
def test_finds_secrets(text: str, expected: str) -> None:
    assert expected in values(find_secrets, text)


def test_checksum_helpers_reject_changed_digits() -> None:
    assert is_valid_svnr(SVNR) and not is_valid_svnr(broken(SVNR))
    assert is_valid_kvnr(KVNR) and not is_valid_kvnr(broken(KVNR))
    assert ID_CARD == "T220001293"  # the published specimen of the German ID card


def test_overlaps_resolve_to_the_specific_type(analyzer: Analyzer) -> None:
    text = "Zugang: postgres://max:Geheim2024@db.example.de/app und Mail an max@example.de"
    found = {(text[s.start : s.end], s.entity_type) for s in analyzer.analyze(text).spans}
    assert ("max:Geheim2024", "SECRET") in found
    assert ("max@example.de", "EMAIL") in found
    assert all(not (t == "EMAIL" and "Geheim" in v) for v, t in found)
