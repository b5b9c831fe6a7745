"""Opaque cursors for keyset pagination over (timestamp, id)."""

from __future__ import annotations

import base64
from datetime import datetime


class InvalidCursor(ValueError):
    """A cursor that this service did not make."""


def encode_cursor(at: datetime, item_id: str) -> str:
    """The cursor pointing after the row (`at`, `item_id`)."""
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{item_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (timestamp, id) a cursor points after; raises InvalidCursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, item_id = raw.split("|", 1)
        return datetime.fromisoformat(at), item_id
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidCursor("invalid cursor") from e


def encode_offset(offset: int) -> str:
    """A cursor for ranked results (full-text search), where keyset paging does not apply."""
    return base64.urlsafe_b64encode(f"o|{offset}".encode()).decode().rstrip("=")


def decode_offset(cursor: str | None) -> int:
    """The offset a ranked-results cursor points at (0 without one); raises InvalidCursor."""
    if not cursor:
        return 0
    try:
        kind, value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|", 1)
        if kind != "o" or int(value) < 0:
            raise ValueError(kind)
        return int(value)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidCursor("invalid cursor") from e
