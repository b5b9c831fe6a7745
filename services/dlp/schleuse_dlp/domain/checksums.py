"""Check-digit rules for German identifiers that python-stdnum does not cover."""

from stdnum import luhn


def _cross_sum(n: int) -> int:
    return sum(int(d) for d in str(n))


def _letter_number(letter: str) -> str:
    """A=01 ... Z=26, as used by SVNR and KVNR."""
    return f"{ord(letter.upper()) - ord('A') + 1:02d}"


def is_valid_svnr(value: str) -> bool:
    """Rentenversicherungsnummer: 2 digits area, DDMMYY, surname initial, 2 digits serial, check digit."""
    v = value.replace(" ", "").upper()
    if len(v) != 12 or not (v[:8].isdigit() and v[8].isalpha() and v[9:].isdigit()):
        return False
    day, month = int(v[2:4]), int(v[4:6])
    # days +50 are used for a second number of the same birth date
    if not (1 <= month <= 12 and (1 <= day <= 31 or 51 <= day <= 81)):
        return False
    digits = v[:8] + _letter_number(v[8]) + v[9:11]
    weights = (2, 1, 2, 5, 7, 1, 2, 1, 2, 1, 2, 1)
    total = sum(_cross_sum(int(d) * w) for d, w in zip(digits, weights, strict=True))
    return total % 10 == int(v[11])


def svnr_check_digit(first11: str) -> str:
    """Check digit for an SVNR without it (used by the synthetic data generator)."""
    v = first11.replace(" ", "").upper()
    digits = v[:8] + _letter_number(v[8]) + v[9:11]
    weights = (2, 1, 2, 5, 7, 1, 2, 1, 2, 1, 2, 1)
    return str(sum(_cross_sum(int(d) * w) for d, w in zip(digits, weights, strict=True)) % 10)


def kvnr_check_digit(first9: str) -> str:
    """Check digit of a Krankenversichertennummer: letter as 2 digits + 8 digits, weights 1,2,... cross sums."""
    digits = _letter_number(first9[0]) + first9[1:9]
    total = sum(_cross_sum(int(d) * (1 if i % 2 == 0 else 2)) for i, d in enumerate(digits))
    return str(total % 10)


def is_valid_kvnr(value: str) -> bool:
    """Krankenversichertennummer (unveränderbarer Teil): one letter, 8 digits, check digit."""
    v = value.upper()
    if len(v) != 10 or not v[0].isalpha() or not v[1:].isdigit():
        return False
    return kvnr_check_digit(v[:9]) == v[9]


_ICAO_VALUES = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}


def icao_check_digit(value: str) -> str:
    """ICAO 9303 check digit (weights 7, 3, 1) as printed in the machine-readable zone."""
    total = sum(_ICAO_VALUES[c] * (7, 3, 1)[i % 3] for i, c in enumerate(value.upper()))
    return str(total % 10)


# Letters used in German ID card / passport serial numbers (no vowels, no B/D/Q/S/I/O/U).
DOC_ALPHABET = frozenset("CFGHJKLMNPRTVWXYZ0123456789")


def is_valid_document_number(value: str, with_check_digit: bool) -> bool:
    """German ID card (Personalausweis) or passport serial: 9 characters, optionally plus check digit."""
    v = value.upper()
    if with_check_digit:
        return len(v) == 10 and set(v[:9]) <= DOC_ALPHABET and v[9].isdigit() and icao_check_digit(v[:9]) == v[9]
    return len(v) == 9 and set(v) <= DOC_ALPHABET


# Issuer identification number prefixes of the common card schemes.
_CARD_PREFIXES = (
    "4",
    "2131",
    "1800",
    "34",
    "37",
    "36",
    "38",
    "30",
    "35",
    "6011",
    "62",
    "64",
    "65",
    "50",
    "56",
    "57",
    "58",
    "6",
)


def is_valid_card(digits: str) -> bool:
    """Payment card: 13-19 digits, a known scheme prefix and a valid Luhn checksum."""
    if not 13 <= len(digits) <= 19 or not digits.isdigit():
        return False
    prefix_ok = digits.startswith(_CARD_PREFIXES) or 51 <= int(digits[:2]) <= 55 or 2221 <= int(digits[:4]) <= 2720
    return prefix_ok and luhn.is_valid(digits)
