"""What a detector finds: a typed character span of the scanned text."""

from dataclasses import dataclass

PERSON = "PERSON"
LOCATION = "LOCATION"
ORG = "ORG"
EMAIL = "EMAIL"
PHONE = "PHONE"
IBAN = "IBAN"
BIC = "BIC"
CREDIT_CARD = "CREDIT_CARD"
TAX_ID = "TAX_ID"  # steuerliche Identifikationsnummer (IdNr)
TAX_NUMBER = "TAX_NUMBER"  # Steuernummer
SOCIAL_SECURITY = "SOCIAL_SECURITY"  # Rentenversicherungsnummer (SVNR)
HEALTH_INSURANCE = "HEALTH_INSURANCE"  # Krankenversichertennummer (KVNR)
ID_CARD = "ID_CARD"
PASSPORT = "PASSPORT"
LICENSE_PLATE = "LICENSE_PLATE"
IP_ADDRESS = "IP_ADDRESS"
DATE_OF_BIRTH = "DATE_OF_BIRTH"
ADDRESS = "ADDRESS"
SECRET = "SECRET"  # noqa: S105 - credentials in URLs, API keys, passwords, private keys

STRUCTURED_TYPES = frozenset(
    {
        EMAIL,
        PHONE,
        IBAN,
        BIC,
        CREDIT_CARD,
        TAX_ID,
        TAX_NUMBER,
        SOCIAL_SECURITY,
        HEALTH_INSURANCE,
        ID_CARD,
        PASSPORT,
        LICENSE_PLATE,
        IP_ADDRESS,
        DATE_OF_BIRTH,
        ADDRESS,
        SECRET,
    }
)
NAMED_TYPES = frozenset({PERSON, LOCATION, ORG})
ALL_TYPES = STRUCTURED_TYPES | NAMED_TYPES


@dataclass(frozen=True, slots=True)
class Span:
    """A finding: [start, end) in the text, its entity type, a confidence and the detector that said so."""

    start: int
    end: int
    entity_type: str
    score: float = 1.0
    source: str = ""

    def overlaps(self, other: "Span") -> bool:
        """True if the two spans share at least one character."""
        return self.start < other.end and other.start < self.end

    @property
    def length(self) -> int:
        return self.end - self.start


def merge_same_type(spans: list[Span]) -> list[Span]:
    """Overlapping spans of one type become their union ("Jonas" + "Jonas Becker" -> "Jonas Becker")."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.entity_type, s.start)):
        last = merged[-1] if merged else None
        if last is not None and last.entity_type == span.entity_type and span.start < last.end:
            merged[-1] = Span(
                last.start, max(last.end, span.end), span.entity_type, max(last.score, span.score), last.source
            )
        else:
            merged.append(span)
    return merged


def resolve_overlaps(spans: list[Span], priority: dict[str, int]) -> list[Span]:
    """Keep a non-overlapping subset: higher type priority first, then higher score, then longer spans."""
    ordered = sorted(
        merge_same_type(spans), key=lambda s: (-priority.get(s.entity_type, 0), -s.score, -s.length, s.start)
    )
    kept: list[Span] = []
    for span in ordered:
        if not any(span.overlaps(k) for k in kept):
            kept.append(span)
    kept.sort(key=lambda s: s.start)
    return kept
