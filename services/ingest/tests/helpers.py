"""Synthetic call events (Faker de_DE) and small database probes for the ingest tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from faker import Faker

from schleuse_common.db import Database

fake = Faker("de_DE")
Faker.seed(7)
NOW = datetime.now(UTC).replace(microsecond=0)  # one clock per session, so the same `n` is the same event


def event(n: int = 0, **overrides: Any) -> dict[str, Any]:
    """A valid call event; `n` varies the number so callers differ (same `n`, same person)."""
    fake.seed_instance(n)
    base: dict[str, Any] = {
        "event_id": f"evt-{n}",
        "received_at": (NOW - timedelta(minutes=5)).isoformat(),
        "caller_number": f"0151 {23450000 + n}",
        "caller_name": fake.name(),
        "date_of_birth": "07.03.1984",
        "topic": "Rückfrage zur Rechnung",
        "priority": "normal",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def line(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload) + b"\n"


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.session() as s:
        return (await s.execute(sa.text(sql), params)).scalar()


async def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    async with db.session() as s:
        return list((await s.execute(sa.text(sql), params)).all())
