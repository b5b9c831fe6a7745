"""Call events as they arrive (JSONL line or bus message): parse, validate, normalise, identify."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import phonenumbers

from schleuse_ingest.domain.calls import Priority

BERLIN = ZoneInfo("Europe/Berlin")
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})
KNOWN_FIELDS = frozenset(
    {
        "event_id",
        "received_at",
        "caller_number",
        "caller_name",
        "date_of_birth",
        "topic",
        "priority",
        "source",
        "schema_version",
    }
)
MAX_EVENT_ID = 200
MAX_NAME = 200
MAX_TOPIC = 2000
MAX_SOURCE = 64
OLDEST_BIRTH_YEAR = 1900

_PRIORITY_WORDS: dict[str, Priority] = {
    "low": Priority.LOW,
    "niedrig": Priority.LOW,
    "normal": Priority.NORMAL,
    "mittel": Priority.NORMAL,
    "high": Priority.HIGH,
    "hoch": Priority.HIGH,
    "urgent": Priority.URGENT,
    "dringend": Priority.URGENT,
    "1": Priority.LOW,
    "2": Priority.NORMAL,
    "3": Priority.HIGH,
    "4": Priority.URGENT,
}
_DOB_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DOB_DE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
# Control, format and separator characters that must not reach storage or search (Unicode C*, Z[lp]).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff\ufff0-\uffff]")


class InvalidEvent(ValueError):
    """An event that cannot become a call; `reason` is a stable code safe for logs and metrics."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class NormalisedCall:
    """A validated call event in canonical form (UTC, E.164, ISO date), ready to store."""

    event_id: str
    received_at: datetime
    caller_number: str
    caller_name: str | None
    date_of_birth: date | None
    topic: str
    priority: Priority
    source: str
    schema_version: int
    payload: dict[str, Any]

    def content_hash(self) -> str:
        """A digest of the normalised content; a changed hash under the same event_id is an edit."""
        return _digest(
            self.received_at.isoformat(),
            self.caller_number,
            self.caller_name or "",
            self.date_of_birth.isoformat() if self.date_of_birth else "",
            self.topic,
            self.priority.value,
            self.source,
        )


def parse_line(line: bytes) -> dict[str, Any]:
    """Decode one JSONL line into an object; raises InvalidEvent for anything else."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise InvalidEvent("malformed_json") from e
    if not isinstance(value, dict):
        raise InvalidEvent("not_an_object")
    return value


def normalise(payload: dict[str, Any], *, default_source: str) -> NormalisedCall:
    """Validate one event object and bring every field into canonical form."""
    schema_version = _schema_version(payload.get("schema_version"))
    received_at = normalise_timestamp(_required(payload, "received_at"))
    caller_number = normalise_number(_required(payload, "caller_number"))
    topic = normalise_text(_required(payload, "topic"), MAX_TOPIC, "invalid_topic")
    if not topic:
        raise InvalidEvent("empty_topic")
    name = payload.get("caller_name")
    caller_name = (normalise_text(name, MAX_NAME, "invalid_caller_name") or None) if name is not None else None
    dob_raw = payload.get("date_of_birth")
    date_of_birth = normalise_birth_date(dob_raw, received_at) if dob_raw not in (None, "") else None
    priority = normalise_priority(payload.get("priority"))
    source = _source(payload.get("source"), default_source)
    event_id = _event_id(payload.get("event_id"), received_at, caller_number, payload)
    return NormalisedCall(
        event_id=event_id,
        received_at=received_at,
        caller_number=caller_number,
        caller_name=caller_name,
        date_of_birth=date_of_birth,
        topic=topic,
        priority=priority,
        source=source,
        schema_version=schema_version,
        payload=payload,
    )


def normalise_timestamp(value: Any) -> datetime:
    """ISO 8601 with offset to UTC; a naive time means Europe/Berlin (first occurrence on DST fall-back)."""
    if not isinstance(value, str):
        raise InvalidEvent("invalid_received_at")
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as e:
        raise InvalidEvent("invalid_received_at") from e
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=BERLIN)
    return parsed.astimezone(UTC)


def normalise_number(value: Any) -> str:
    """A German or international phone number in E.164 (`+4930123456`)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidEvent("invalid_caller_number")
    return _e164(value.strip())


@lru_cache(maxsize=65536)
def _e164(text: str) -> str:
    # Callers repeat; caching the parse keeps ingest well above 10k events/s.
    try:
        number = phonenumbers.parse(text, "DE")
    except phonenumbers.NumberParseException as e:
        raise InvalidEvent("invalid_caller_number") from e
    if not phonenumbers.is_valid_number(number):
        raise InvalidEvent("invalid_caller_number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_birth_date(value: Any, received_at: datetime) -> date:
    """`YYYY-MM-DD` or `DD.MM.YYYY` to a date that lies in the past and after 1900."""
    if not isinstance(value, str):
        raise InvalidEvent("invalid_date_of_birth")
    text = value.strip()
    match = _DOB_ISO.match(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
    else:
        match = _DOB_DE.match(text)
        if not match:
            raise InvalidEvent("invalid_date_of_birth")
        day, month, year = (int(g) for g in match.groups())
    try:
        born = date(year, month, day)
    except ValueError as e:
        raise InvalidEvent("invalid_date_of_birth") from e
    if born.year < OLDEST_BIRTH_YEAR or born > received_at.astimezone(BERLIN).date():
        raise InvalidEvent("implausible_date_of_birth")
    return born


def normalise_text(value: Any, limit: int, reason: str = "invalid_text") -> str:
    """Unicode NFC, no control characters, single spaces, trimmed and cut to `limit` characters."""
    if not isinstance(value, str):
        raise InvalidEvent(reason)
    return (_clean_text_cached(value) if len(value) <= CACHED_TEXT else _clean_text(value))[:limit]


def _clean_text(value: str) -> str:
    # Printable ASCII (most names and topics) needs neither NFC nor the control filter.
    plain = value.isascii() and value.isprintable()
    text = value if plain else _CONTROL.sub(" ", unicodedata.normalize("NFC", value))
    return " ".join(text.split())  # str.split() splits on exactly the whitespace `\s` matches


# Names and topics repeat a lot: short ones are cleaned and folded once (bounded memory).
CACHED_TEXT = 256
_clean_text_cached = lru_cache(maxsize=32768)(_clean_text)


_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def search_key(text: str) -> str:
    """Text as search compares it: casefolded with German umlauts folded (Müller = mueller)."""
    return _search_key_cached(text) if len(text) <= CACHED_TEXT else _search_key(text)


def _search_key(text: str) -> str:
    return unicodedata.normalize("NFC", text).lower().translate(_FOLD).casefold()


_search_key_cached = lru_cache(maxsize=32768)(_search_key)


def normalise_priority(value: Any) -> Priority:
    """Priority words (English or German) or 1-4; absent means normal."""
    if value is None or value == "":
        return Priority.NORMAL
    if isinstance(value, bool):
        raise InvalidEvent("invalid_priority")
    key = str(value).strip().lower()
    try:
        return _PRIORITY_WORDS[key]
    except KeyError as e:
        raise InvalidEvent("invalid_priority") from e


def event_identity(received_at: datetime, caller_number: str, payload: dict[str, Any]) -> str:
    """A stable id for an event without `event_id`: hash of time, number and the whole payload."""
    body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode()
    return "sha256:" + _digest(received_at.isoformat(), caller_number, body)


def _event_id(value: Any, received_at: datetime, caller_number: str, payload: dict[str, Any]) -> str:
    if value is None or value == "":
        return event_identity(received_at, caller_number, payload)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEvent("invalid_event_id")
    text = str(value).strip()
    if not text or len(text) > MAX_EVENT_ID or text.startswith("sha256:"):
        raise InvalidEvent("invalid_event_id")
    return text


def _schema_version(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidEvent("unsupported_schema_version")
    try:
        version = int(value)
    except ValueError as e:
        raise InvalidEvent("unsupported_schema_version") from e
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise InvalidEvent("unsupported_schema_version")
    return version


def _source(value: Any, default: str) -> str:
    if value is None or value == "":
        return default
    text = normalise_text(value, MAX_SOURCE, "invalid_source") if isinstance(value, str) else ""
    if not text:
        raise InvalidEvent("invalid_source")
    return text


def _required(payload: dict[str, Any], name: str) -> Any:
    value = payload.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidEvent(f"missing_{name}")
    return value


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
