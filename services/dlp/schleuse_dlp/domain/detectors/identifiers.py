"""Structured identifiers found by pattern and confirmed by checksum, number plan or context."""

import ipaddress
import re
from collections.abc import Callable, Iterator

import phonenumbers
from stdnum import bic as std_bic
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.de import idnr, stnr

from schleuse_dlp.domain import checksums
from schleuse_dlp.domain.plates import DISTRICT_CODES
from schleuse_dlp.domain.spans import (
    BIC,
    CREDIT_CARD,
    DATE_OF_BIRTH,
    EMAIL,
    HEALTH_INSURANCE,
    IBAN,
    ID_CARD,
    IP_ADDRESS,
    LICENSE_PLATE,
    PASSPORT,
    PHONE,
    SOCIAL_SECURITY,
    TAX_ID,
    TAX_NUMBER,
    Span,
)
from schleuse_dlp.domain.tokens import fold_ascii_case

Finder = Callable[[str], Iterator[Span]]

_WORD = r"A-Za-z0-9ÄÖÜäöüß"


def _before(text: str, start: int, window: int = 45) -> str:
    return text[max(0, start - window) : start].lower()


def _has_context(text: str, start: int, words: tuple[str, ...], window: int = 45) -> bool:
    ctx = _before(text, start, window)
    return any(w in ctx for w in words)


# --- e-mail -----------------------------------------------------------------------------------
_EMAIL = re.compile(
    rf"(?<![{_WORD}._%+-])[{_WORD}._%+-]{{1,64}}@(?:[{_WORD}-]{{1,63}}\.)+[A-Za-z]{{2,24}}(?![{_WORD}])"
)


def find_emails(text: str) -> Iterator[Span]:
    """E-mail addresses (local part and a dotted domain with an alphabetic TLD)."""
    if "@" not in text:
        return
    for m in _EMAIL.finditer(text):
        local = m.group().split("@", 1)[0]
        if local.startswith(".") or local.endswith(".") or ".." in local:
            continue
        yield Span(m.start(), m.end(), EMAIL, 1.0, "email")


# --- phone numbers -----------------------------------------------------------------------------
_PHONE = re.compile(
    r"(?<![\w+/.,-])(?:(?:\+|00)[1-9]\d{0,2}[\s./-]?(?:\(0\)[\s./-]?)?\(?\d{1,5}\)?|\(0\d{1,5}\)|0\d{1,5})"
    r"(?:[\s./-]?\d{1,8}){1,4}(?![\w])"
)
_DATE_LIKE = re.compile(r"^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}$")
_PRECEDING_NUMBER = re.compile(r"\d[ ]?$")  # "4711 0815 22": part of a longer number
# reference numbers that happen to look like a phone number or a document serial
_REFERENCE_CONTEXT = (
    "kundennummer",
    "kunden-nr",
    "rechnung",
    "bestellnummer",
    "bestellung",
    "auftrag",
    "vorgang",
    "ticket",
    "artikel",
    "referenz",
    "aktenzeichen",
    "az.",
    "seriennummer",
    "order",
    "invoice",
)
_PHONE_CONTEXT = ("tel", "fon", "phone", "mobil", "handy", "fax", "ruf", "erreichbar", "call", "anrufen", "whatsapp")


def find_phones(text: str, region: str = "DE") -> Iterator[Span]:
    """Phone numbers in national (0...) or international (+.. / 00..) form, valid by libphonenumber."""
    for m in _PHONE.finditer(text):
        raw = m.group().rstrip(" ./-")
        if _DATE_LIKE.match(raw):
            continue
        digits = re.sub(r"\D", "", raw)
        if len(digits) < 7 or len(digits) > 17 or _PRECEDING_NUMBER.search(text, max(0, m.start() - 2), m.start()):
            continue
        try:
            num = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num):
            reference = raw[0] not in "+(" and _has_context(text, m.start(), _REFERENCE_CONTEXT, 25)
            if reference and not _has_context(text, m.start(), _PHONE_CONTEXT, 25):
                continue
            yield Span(m.start(), m.start() + len(raw), PHONE, 1.0, "phone")
        elif phonenumbers.is_possible_number(num) and _has_context(text, m.start(), _PHONE_CONTEXT, 25):
            yield Span(m.start(), m.start() + len(raw), PHONE, 0.8, "phone")


# --- bank ----------------------------------------------------------------------------------
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{1,4}){3,8}(?![A-Za-z0-9])", re.IGNORECASE)


def find_ibans(text: str) -> Iterator[Span]:
    """IBANs with or without grouping spaces, validated by ISO 13616 mod-97 and country length."""
    for m in _IBAN.finditer(text):
        raw = m.group()
        # the pattern may swallow a following number group: shorten group-wise until valid
        parts = raw.split(" ")
        for n in range(len(parts), 0, -1):
            candidate = " ".join(parts[:n])
            if std_iban.is_valid(candidate.upper()):
                yield Span(m.start(), m.start() + len(candidate), IBAN, 1.0, "iban")
                break


_BIC = re.compile(r"(?<![A-Za-z0-9])[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?(?![A-Za-z0-9])")
_BIC_CONTEXT = ("bic", "swift", "bank", "iban")


def find_bics(text: str) -> Iterator[Span]:
    """BIC/SWIFT codes: ISO 9362 format with a real country code, and context or a non-word shape."""
    for m in _BIC.finditer(text):
        raw = m.group()
        if not std_bic.is_valid(raw):
            continue
        wordlike = raw.isalpha() and not raw.endswith("XXX")
        if wordlike and not _has_context(text, m.start(), _BIC_CONTEXT, 60):
            continue
        yield Span(m.start(), m.end(), BIC, 1.0, "bic")


_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])")
_CARD_CONTEXT = ("karte", "card", "maestro", "visa", "mastercard", "amex", "kreditkarte", "girocard", "bezahlt")


def find_cards(text: str) -> Iterator[Span]:
    """Payment card numbers: scheme prefix and Luhn checksum (12-digit Maestro numbers only in context)."""
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if len(digits) == 12:
            if not (digits[0] in "56" and luhn.is_valid(digits) and _has_context(text, m.start(), _CARD_CONTEXT, 40)):
                continue
        elif not checksums.is_valid_card(digits):
            continue
        yield Span(m.start(), m.end(), CREDIT_CARD, 1.0, "card")


# --- tax, social security, health insurance -----------------------------------------------------
_IDNR = re.compile(r"(?<![\d/.-])[1-9]\d(?:[ ]?\d{3}){3}(?![\d/-])")
_IDNR_CONTEXT = ("steuer", "idnr", "id-nr", "identifikationsnummer", "tin", "tax")


def find_tax_ids(text: str) -> Iterator[Span]:
    """Steuerliche Identifikationsnummer: 11 digits, ISO 7064 check digit and digit-repetition rule."""
    for m in _IDNR.finditer(text):
        digits = m.group().replace(" ", "")
        if len(digits) == 11 and idnr.is_valid(digits):
            yield Span(m.start(), m.end(), TAX_ID, 1.0, "idnr")


_STNR = re.compile(r"(?<![\d/])\d{2,3}/\d{3,4}/\d{4,5}(?![\d/])|(?<![\d/])\d{10,13}(?![\d/])")
_TEN_DIGITS = re.compile(r"\d{10}")
_STNR_CONTEXT = ("steuernummer", "st.-nr", "stnr", "st-nr", "st.nr", "steuer-nr", "steuer nr")


def find_tax_numbers(text: str) -> Iterator[Span]:
    """Steuernummer in a regional format (slashed) or, with context, the 13-digit federal format."""
    if "/" not in text and not _TEN_DIGITS.search(text):  # each form has a slash or 10+ digits
        return
    for m in _STNR.finditer(text):
        raw = m.group()
        if not stnr.is_valid(raw):
            continue
        if "/" not in raw and not _has_context(text, m.start(), _STNR_CONTEXT, 40):
            continue
        yield Span(m.start(), m.end(), TAX_NUMBER, 1.0, "stnr")


_SVNR = re.compile(r"(?<![A-Za-z0-9])\d{2}[ ]?\d{6}[ ]?[A-Z][ ]?\d{3}(?![A-Za-z0-9])")


def find_social_security(text: str) -> Iterator[Span]:
    """Rentenversicherungsnummer (SVNR) with its check digit."""
    for m in _SVNR.finditer(text):
        if checksums.is_valid_svnr(m.group()):
            yield Span(m.start(), m.end(), SOCIAL_SECURITY, 1.0, "svnr")


_KVNR = re.compile(r"(?<![A-Za-z0-9])[A-Z]\d{9}(?![A-Za-z0-9])")


def find_health_insurance(text: str) -> Iterator[Span]:
    """Krankenversichertennummer (KVNR) with its check digit."""
    for m in _KVNR.finditer(text):
        if checksums.is_valid_kvnr(m.group()):
            yield Span(m.start(), m.end(), HEALTH_INSURANCE, 1.0, "kvnr")


# --- identity documents --------------------------------------------------------------------------
_DOC = re.compile(r"(?<![A-Za-z0-9])[CFGHJKLMNPRTVWXYZ][CFGHJKLMNPRTVWXYZ0-9]{8}\d?(?![A-Za-z0-9])")
_ID_CONTEXT = ("ausweis", "personalausweis", "perso", "id card", "identity card", "id-karte", "dokumentennummer")
_PASS_CONTEXT = ("pass", "reisepass", "passport")


def find_documents(text: str) -> Iterator[Span]:
    """ID card and passport serial numbers: ICAO check digit, or 9 characters with context."""
    for m in _DOC.finditer(text):
        raw = m.group()
        if not any(c.isdigit() for c in raw):
            continue
        ctx = _before(text, m.start(), 50)
        pass_at = max(ctx.rfind(w) for w in _PASS_CONTEXT)
        id_at = max(ctx.rfind(w) for w in _ID_CONTEXT)
        is_pass = pass_at > id_at
        is_id = id_at > pass_at
        valid10 = len(raw) == 10 and checksums.is_valid_document_number(raw, with_check_digit=True)
        if not valid10 and not (len(raw) == 9 and (is_pass or is_id)):
            continue
        if not (is_pass or is_id) and _has_context(text, m.start(), _REFERENCE_CONTEXT, 25):
            continue
        # German passports start with C, F, G, H, J, K; ID cards with L-Y
        entity = PASSPORT if is_pass or (not is_id and raw[0] in "CFGHJK") else ID_CARD
        yield Span(m.start(), m.end(), entity, 1.0 if valid10 else 0.85, "document")


# --- vehicles -------------------------------------------------------------------------------
_PLATE = re.compile(r"(?<![\wÄÖÜ-])([A-ZÄÖÜ]{1,3})[- ]([A-Z]{1,2})[ -]?([1-9]\d{0,3})([EH]?)(?![\w])")


def find_plates(text: str) -> Iterator[Span]:
    """German licence plates: known district code, 1-2 letters, 1-4 digits, optional E/H suffix."""
    for m in _PLATE.finditer(text):
        if m.group(1) in DISTRICT_CODES and len(m.group(1)) + len(m.group(2)) + len(m.group(3)) <= 8:
            yield Span(m.start(), m.end(), LICENSE_PLATE, 1.0, "plate")


# --- network ------------------------------------------------------------------------------
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])")
_DIGIT_DOT_DIGIT = re.compile(r"\d\.\d")  # in every IPv4 address: a cheap test first
_VERSION_CONTEXT = ("version", "v.", "release", "kapitel", "abschnitt", "§", "ziffer", "nr.")


def find_ips(text: str) -> Iterator[Span]:
    """IPv4 and IPv6 addresses that parse, skipping version and section numbers."""
    for m in _IPV4.finditer(text) if _DIGIT_DOT_DIGIT.search(text) else ():
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        if _has_context(text, m.start(), _VERSION_CONTEXT, 12):
            continue
        yield Span(m.start(), m.end(), IP_ADDRESS, 1.0, "ipv4")
    if text.count(":") < 2:
        return
    for m in _IPV6.finditer(text):
        raw = m.group()
        if sum(c.isalnum() for c in raw) < 3:
            continue
        try:
            ipaddress.IPv6Address(raw)
        except ValueError:
            continue
        yield Span(m.start(), m.end(), IP_ADDRESS, 1.0, "ipv6")


# --- dates of birth -----------------------------------------------------------------------------
_MONTHS = (
    "januar|jänner|februar|märz|april|mai|juni|juli|august|september|oktober|november|dezember|"
    "january|february|march|may|june|july|october|december|"
    r"jan\.?|feb\.?|mär\.?|mrz\.?|apr\.?|jun\.?|jul\.?|aug\.?|sep\.?|sept\.?|okt\.?|oct\.?|nov\.?|dez\.?|dec\.?"
)
_DATE = re.compile(
    rf"(?<!\d)(?:\d{{1,2}}\.\s?\d{{1,2}}\.\s?(?:19|20)?\d{{2}}|(?:19|20)\d{{2}}-\d{{2}}-\d{{2}}"
    rf"|\d{{1,2}}/\d{{1,2}}/(?:19|20)\d{{2}}|\d{{1,2}}\.?\s(?:{_MONTHS})\s(?:19|20)\d{{2}}"
    rf"|(?:{_MONTHS})\s\d{{1,2}},?\s(?:19|20)\d{{2}})(?!\d)",
    re.IGNORECASE,
)
_DOB_CONTEXT = re.compile(
    r"(?:geb\.|geboren|geburtsdatum|geburtstag|geb\.-datum|geb\.datum|date of birth|birth date|birthday|"
    r"born|dob|d\.o\.b\.|\*)\s*(?:am|on|:)?\s*$",
    re.IGNORECASE,
)


_DOB_AFTER = re.compile(r"\s*(?:\)\s*)?(?:geboren|zur welt gekommen|born)", re.IGNORECASE)


# Every cue of _DOB_CONTEXT and _DOB_AFTER contains one of these (ASCII, matched case-insensitively):
# a text without any of them cannot hold a date of birth, and the costly date scan is skipped.
_DOB_TRIGGERS = ("geb.", "geboren", "geburt", "birth", "born", "dob", "d.o.b.", "*", "zur welt gekommen")


def find_dates_of_birth(text: str) -> Iterator[Span]:
    """Dates preceded by a birth cue ("geb. am", "Geburtsdatum:", "*", "born on")."""
    folded = fold_ascii_case(text)
    if not any(cue in folded for cue in _DOB_TRIGGERS):
        return
    for m in _DATE.finditer(text):
        before = _DOB_CONTEXT.search(text[max(0, m.start() - 30) : m.start()])
        if before or _DOB_AFTER.match(text, m.end()):
            yield Span(m.start(), m.end(), DATE_OF_BIRTH, 1.0, "dob")


IDENTIFIER_FINDERS: tuple[Finder, ...] = (
    find_emails,
    find_phones,
    find_ibans,
    find_bics,
    find_cards,
    find_tax_ids,
    find_tax_numbers,
    find_social_security,
    find_health_insurance,
    find_documents,
    find_plates,
    find_ips,
    find_dates_of_birth,
)


class IdentifierDetector:
    """All validated structured identifiers (e-mail, phone, bank, tax, insurance, documents, ...)."""

    name = "identifiers"

    def __init__(self, finders: tuple[Finder, ...] = IDENTIFIER_FINDERS) -> None:
        self._finders = finders

    def detect(self, text: str, language: str) -> list[Span]:
        """Run every finder over the text."""
        spans: list[Span] = []
        for finder in self._finders:
            spans.extend(finder(text))
        return spans
