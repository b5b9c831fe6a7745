"""The analytics schema: one row per provider call (ids, tokens, cost; never content) and the budgets."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from schleuse_analytics.domain.budget import Budget, period_bounds
from schleuse_common.bus import Envelope
from schleuse_common.contracts.usage import UsageRecorded

metadata = MetaData(schema="analytics")

usage_events = Table(
    "usage_events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("call_id", String(64), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False, index=True),
    Column("user_id", String(64), nullable=False),
    Column("department", String(128)),
    Column("assistant_id", String(64)),
    Column("requested_model", String(200), nullable=False),
    Column("provider", String(100), nullable=False),
    Column("model", String(200), nullable=False),
    Column("routing_reason", String(200), nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("total_tokens", Integer, nullable=False),
    Column("estimated", Boolean, nullable=False),
    Column("cost", Numeric(14, 6), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("status", String(32), nullable=False),
    Column("recorded_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

budgets = Table(
    "budgets",
    metadata,
    Column("scope", String(16), primary_key=True),
    Column("scope_id", String(128), primary_key=True),
    Column("period", String(16), nullable=False, server_default="monthly"),
    Column("currency", String(3), nullable=False),
    Column("soft_limit", Numeric(14, 6)),
    Column("hard_limit", Numeric(14, 6)),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

budget_meta = Table(
    "budget_meta",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("version", BigInteger, nullable=False, server_default="0"),
)


async def record_usage(session: AsyncSession, env: Envelope[UsageRecorded]) -> bool:
    """Insert one usage fact; idempotent on the envelope id. True when it was new."""
    return bool(await record_usages(session, [env]))


async def record_usages(session: AsyncSession, envs: list[Envelope[UsageRecorded]]) -> set[str]:
    """Insert usage facts in one statement; idempotent on envelope ids. Returns the ids that were new."""
    if not envs:
        return set()
    rows = [_usage_row(env) for env in {env.id: env for env in envs}.values()]
    # One statement executed for many rows: compiled once and cached, whatever the batch size.
    stmt = insert(usage_events).on_conflict_do_nothing(index_elements=["event_id"]).returning(usage_events.c.event_id)
    return set((await session.execute(stmt, rows)).scalars())


def _usage_row(env: Envelope[UsageRecorded]) -> dict[str, object]:
    u = env.data
    return {
        "event_id": env.id,
        "call_id": u.call_id,
        "occurred_at": env.occurred_at,
        "user_id": u.user_id,
        "department": u.department,
        "assistant_id": u.assistant_id,
        "requested_model": u.routing.requested,
        "provider": u.routing.provider,
        "model": u.routing.model,
        "routing_reason": u.routing.reason,
        "prompt_tokens": u.usage.prompt_tokens,
        "completion_tokens": u.usage.completion_tokens,
        "total_tokens": u.usage.total_tokens,
        "estimated": u.usage.estimated,
        "cost": u.cost,
        "currency": u.currency,
        "latency_ms": u.latency_ms,
        "status": u.status,
    }


# -- budgets ---------------------------------------------------------------------------


async def budgets_version(session: AsyncSession) -> int:
    """A number that moves on every budget change (replicas compare it to refresh their cache)."""
    row = (await session.execute(select(budget_meta.c.version).where(budget_meta.c.key == "budgets"))).first()
    return int(row.version) if row else 0


async def _bump(session: AsyncSession) -> int:
    stmt = (
        insert(budget_meta)
        .values(key="budgets", version=1)
        .on_conflict_do_update(index_elements=["key"], set_={"version": budget_meta.c.version + 1})
        .returning(budget_meta.c.version)
    )
    return int((await session.execute(stmt)).scalar_one())


def _budget(row: object) -> Budget:
    return Budget(
        scope=row.scope,  # type: ignore[attr-defined]
        scope_id=row.scope_id,  # type: ignore[attr-defined]
        currency=row.currency,  # type: ignore[attr-defined]
        soft_limit=row.soft_limit,  # type: ignore[attr-defined]
        hard_limit=row.hard_limit,  # type: ignore[attr-defined]
    )


async def load_budgets(session: AsyncSession) -> tuple[int, dict[tuple[str, str], tuple[Budget, datetime]]]:
    """Every budget with its last change, and the version they belong to."""
    version = await budgets_version(session)
    rows = (await session.execute(select(budgets))).all()
    return version, {(r.scope, r.scope_id): (_budget(r), r.updated_at) for r in rows}


async def put_budget(session: AsyncSession, budget: Budget) -> bool:
    """Create or replace a budget; True when it was created."""
    values = {
        "currency": budget.currency,
        "soft_limit": budget.soft_limit,
        "hard_limit": budget.hard_limit,
    }
    stmt = (
        insert(budgets)
        .values(scope=budget.scope, scope_id=budget.scope_id, **values)
        .on_conflict_do_update(index_elements=["scope", "scope_id"], set_={**values, "updated_at": func.now()})
        .returning(budgets.c.created_at, budgets.c.updated_at)
    )
    row = (await session.execute(stmt)).one()
    await _bump(session)
    return bool(row.created_at == row.updated_at)


async def delete_budget(session: AsyncSession, scope: str, scope_id: str) -> bool:
    result = await session.execute(delete(budgets).where(budgets.c.scope == scope, budgets.c.scope_id == scope_id))
    deleted = bool(result.rowcount)  # type: ignore[attr-defined]
    if deleted:
        await _bump(session)
    return deleted


async def spent_in(session: AsyncSession, budget: Budget, period: str) -> Decimal:
    """What a budget's scope spent in a period according to the usage events (to rebuild Redis ledgers)."""
    start, end = period_bounds(period)
    column = usage_events.c.department if budget.scope == "department" else usage_events.c.assistant_id
    stmt = select(func.coalesce(func.sum(usage_events.c.cost), 0)).where(
        column == budget.scope_id,
        usage_events.c.currency == budget.currency,
        usage_events.c.occurred_at >= start,
        usage_events.c.occurred_at < end,
    )
    return Decimal((await session.execute(stmt)).scalar_one())
