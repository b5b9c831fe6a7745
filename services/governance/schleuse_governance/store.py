"""The governance schema: the hash-chained audit log."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from schleuse_common.bus import Envelope
from schleuse_common.contracts.audit import AuditEvent
from schleuse_governance.domain.chain import GENESIS, entry_hash, first_break

metadata = MetaData(schema="governance")

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("actor_id", String(64)),
    Column("entry", JSONB, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

CHAIN_LOCK = 0x5C4A1


def _entry(env: Envelope[AuditEvent], subject: str) -> dict[str, Any]:
    return {
        "event_id": env.id,
        "occurred_at": env.occurred_at.isoformat(),
        "subject": subject,
        "actor_id": env.actor.id if env.actor else None,
        "actor_roles": sorted(env.actor.roles) if env.actor else [],
        **env.data.model_dump(),
    }


async def append(session: AsyncSession, env: Envelope[AuditEvent], subject: str) -> bool:
    """Append an audit event to the chain (serialised across replicas); False if it was there already."""
    await session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHAIN_LOCK})
    exists = (await session.execute(sa.select(audit_log.c.seq).where(audit_log.c.event_id == env.id))).first()
    if exists:
        return False
    prev = (await session.execute(sa.select(audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1))).scalar()
    prev_hash = prev or GENESIS
    entry = _entry(env, subject)
    await session.execute(
        insert(audit_log).values(
            event_id=env.id,
            occurred_at=env.occurred_at,
            subject=subject,
            actor_id=entry["actor_id"],
            entry=entry,
            prev_hash=prev_hash,
            hash=entry_hash(prev_hash, entry),
        )
    )
    return True


async def verify(session: AsyncSession) -> int | None:
    """Sequence number of the first tampered entry, or None when the chain is intact."""
    rows = (
        await session.execute(
            sa.select(audit_log.c.seq, audit_log.c.entry, audit_log.c.prev_hash, audit_log.c.hash).order_by(
                audit_log.c.seq
            )
        )
    ).all()
    broken = first_break((r.entry, r.prev_hash, r.hash) for r in rows)
    return None if broken is None else int(rows[broken].seq)
