"""What a list of calls asks for: filters, quick filters, sort and an opaque cursor."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import orjson

from schleuse_ingest.domain.calls import InvalidRequest, Priority, Status
from schleuse_ingest.domain.retention import BERLIN

MAX_LIMIT = 200
_NUMBER_QUERY = re.compile(r"^[+0(][\d\s()/-]{2,}$")


class Quick(StrEnum):
    TODAY = "today"
    LAST_HOUR = "last_hour"
    OPEN = "open"
    MINE = "mine"


class Sort(StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"
    PRIORITY = "priority"


PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.URGENT: 3}


@dataclass(frozen=True, slots=True)
class Filters:
    """Concrete filters after quick filters and retention were applied."""

    since: datetime
    until: datetime | None = None
    statuses: tuple[Status, ...] = ()
    assignee: str | None = None
    priorities: tuple[Priority, ...] = ()
    number_prefix: str | None = None
    text: str | None = None
    ids: tuple[int, ...] = ()
    updated_since: datetime | None = None


def resolve(
    *,
    cutoff: datetime,
    now: datetime,
    actor_id: str,
    q: str | None = None,
    statuses: list[Status] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    assignee: str | None = None,
    priorities: list[Priority] | None = None,
    quick: list[Quick] | None = None,
    ids: list[int] | None = None,
    updated_since: datetime | None = None,
) -> Filters:
    """Combine explicit filters, quick filters and the retention cutoff into one Filters."""
    lower = max(cutoff, since) if since else cutoff
    status_set = list(statuses or [])
    for quick_filter in quick or []:
        if quick_filter == Quick.TODAY:
            midnight = now.astimezone(BERLIN).replace(hour=0, minute=0, second=0, microsecond=0)
            lower = max(lower, midnight)
        elif quick_filter == Quick.LAST_HOUR:
            lower = max(lower, now - timedelta(hours=1))
        elif quick_filter == Quick.OPEN:
            status_set = [s for s in status_set if s != Status.DONE] or [Status.NEW, Status.IN_PROGRESS]
        elif quick_filter == Quick.MINE:
            assignee = actor_id
    number_prefix, text = split_query(q)
    return Filters(
        since=lower,
        until=until,
        statuses=tuple(dict.fromkeys(status_set)),
        assignee=assignee,
        priorities=tuple(dict.fromkeys(priorities or [])),
        number_prefix=number_prefix,
        text=text,
        ids=tuple(ids or []),
        updated_since=updated_since,
    )


def number_prefix(typed: str) -> str:
    """What a user typed as (the start of) a number, `0151 23`, as an E.164 prefix, `+4915123`."""
    digits = re.sub(r"[^\d+]", "", typed)
    if digits.startswith("00"):
        return "+" + digits[2:]
    if digits.startswith("+"):
        return digits
    return "+49" + digits.removeprefix("0")


def split_query(q: str | None) -> tuple[str | None, str | None]:
    """A query that looks like a phone number searches number prefixes; anything else names and topics."""
    if q is None or not q.strip():
        return None, None
    text = q.strip()
    if _NUMBER_QUERY.match(text):
        return number_prefix(text), None
    return None, text[:200]


MAX_SEARCH_WORDS = 8
MIN_PREFIX = 3  # shorter words match whole words only (`b` of `B.Sc.` must not expand to every b-word)


def search_words(key: str) -> list[str]:
    """The words of a search key as name and topic words are indexed: runs of word characters."""
    return re.findall(r"\w+", key)


def search_terms(key: str) -> list[str]:
    """One tsquery term per typed word (`termin ab` -> `termin:*`, `ab`); only word characters pass."""
    return [w + ":*" if len(w) >= MIN_PREFIX else w for w in search_words(key)[:MAX_SEARCH_WORDS]]


def encode_cursor(sort: Sort, key: tuple[object, ...]) -> str:
    """An opaque cursor for the row after which the next page starts."""
    raw = orjson.dumps({"s": sort.value, "k": [_jsonable(v) for v in key]})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> list[object]:
    """The key of a cursor, checked to belong to the same sort order."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError) as e:
        raise InvalidRequest("invalid cursor") from e
    if not isinstance(value, dict) or value.get("s") != sort.value or not isinstance(value.get("k"), list):
        raise InvalidRequest("cursor does not match the sort order")
    key: list[object] = value["k"]
    return key


def check_limit(limit: int) -> int:
    """Page sizes between 1 and MAX_LIMIT."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _jsonable(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value
