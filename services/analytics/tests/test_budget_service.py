"""`analytics.budget.*` on the real bus, Postgres and Redis: cache, reserve/settle, admin changes, Redis loss."""

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis

from schleuse_analytics import store
from schleuse_analytics.budgets import BudgetHandlers
from schleuse_analytics.domain.budget import BudgetLedger
from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError, Envelope
from schleuse_common.contracts.budget import (
    ANALYTICS_BUDGET_CHECK,
    ANALYTICS_BUDGET_SETTLE,
    ANALYTICS_BUDGETS_DELETE,
    ANALYTICS_BUDGETS_LIST,
    ANALYTICS_BUDGETS_PUT,
    BudgetCheck,
    BudgetDecision,
    BudgetDeleted,
    BudgetFields,
    BudgetKey,
    BudgetList,
    BudgetListRequest,
    BudgetSettle,
    BudgetSettled,
    BudgetView,
)
from schleuse_common.contracts.providers import Routing, Usage
from schleuse_common.contracts.usage import UsageRecorded
from schleuse_common.db import Database, run_migrations

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
PERIOD = "2031-05"


@pytest.fixture(scope="module")
async def env(infra, actor_key):
    await asyncio.to_thread(run_migrations, infra.database_url, "analytics", MIGRATIONS)
    db = Database(infra.database_url, "analytics")
    async with db.session() as session:
        await session.execute(sa.text("DELETE FROM analytics.budgets"))
    redis = Redis.from_url(infra.redis_url)
    prefix = f"test:budgets:{uuid.uuid4().hex}:"
    bus = await Bus.connect(infra.nats_url, f"analytics-test-{uuid.uuid4().hex[:6]}", actor_key=actor_key)
    await bus.ensure_streams()
    handlers = BudgetHandlers(bus, db, BudgetLedger(redis, prefix=prefix), period=lambda: PERIOD)
    await handlers.register()
    yield handlers, bus, db, redis, prefix
    await bus.close()
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
    await db.dispose()


def admin(key: bytes) -> Actor:
    return Actor(id="u-admin", roles=["admin", "user"]).signed(key)


def user(key: bytes) -> Actor:
    return Actor(id="u-1", roles=["user"], department="vertrieb").signed(key)


async def check(bus: Bus, key: bytes, cost: str, *, department=None, assistant_id=None, call_id=None):
    req = BudgetCheck(
        call_id=call_id or uuid.uuid4().hex,
        department=department,
        assistant_id=assistant_id,
        estimated_cost=Decimal(cost),
        currency="EUR",
    )
    return await bus.request(ANALYTICS_BUDGET_CHECK, req, BudgetDecision, actor=user(key))


async def put(bus: Bus, key: bytes, **fields) -> BudgetView:
    return await bus.request(ANALYTICS_BUDGETS_PUT, BudgetFields(**fields), BudgetView, actor=admin(key))


async def test_without_budgets_every_check_is_allowed_and_says_none_are_configured(env, actor_key):
    _, bus, *_ = env
    decision = await check(bus, actor_key, "5.00", department="vertrieb")
    assert (decision.allowed, decision.reserved, decision.configured, decision.level) == (True, False, False, "ok")


async def test_only_admins_change_budgets_and_limits_must_be_consistent(env, actor_key):
    _, bus, *_ = env
    with pytest.raises(BusError) as info:
        await bus.request(
            ANALYTICS_BUDGETS_PUT, BudgetFields(scope="department", scope_id="x"), BudgetView, actor=user(actor_key)
        )
    assert info.value.status == 403
    with pytest.raises(BusError) as info:
        await put(bus, actor_key, scope="department", scope_id="x", soft_limit=Decimal(5), hard_limit=Decimal(1))
    assert (info.value.code, info.value.status) == ("invalid_budget", 422)


async def test_hard_limit_refuses_naming_the_budget_and_settle_charges_the_real_cost(env, actor_key):
    _handlers, bus, _db, *_ = env
    audits: list[bytes] = []

    async def seen(msg) -> None:
        audits.append(msg.data)

    sub = await bus.nc.subscribe("audit.budgets.>", cb=seen)
    view = await put(
        bus, actor_key, scope="department", scope_id="einkauf", soft_limit=Decimal("0.80"), hard_limit=Decimal("1.00")
    )
    await bus.nc.flush()
    await sub.unsubscribe()
    assert (view.spent, view.reserved, view.level, view.period) == (Decimal(0), Decimal(0), "ok", PERIOD)
    assert audits and b'"budgets.created"' in audits[0] and b"department:einkauf" in audits[0]

    first = await check(bus, actor_key, "0.70", department="einkauf", call_id="call-a")
    assert (first.allowed, first.reserved, first.level, first.configured) == (True, True, "ok", True)
    soft = await check(bus, actor_key, "0.20", department="einkauf", call_id="call-b")
    assert (soft.allowed, soft.level, soft.soft_exceeded) == (True, "soft", ["department:einkauf"])
    refused = await check(bus, actor_key, "0.20", department="einkauf", call_id="call-c")
    assert (refused.allowed, refused.level, refused.blocked_by) == (False, "hard", "department:einkauf")
    assert "department 'einkauf'" in refused.message and "0.90 of 1.00 EUR" in refused.message

    settle = BudgetSettle(call_id="call-a", department="einkauf", actual_cost=Decimal("0.10"), period=PERIOD)
    assert (await bus.request(ANALYTICS_BUDGET_SETTLE, settle, BudgetSettled)).settled
    assert not (await bus.request(ANALYTICS_BUDGET_SETTLE, settle, BudgetSettled)).settled  # idempotent
    release = BudgetSettle(call_id="call-b", department="einkauf", actual_cost=None, period=PERIOD)
    assert (await bus.request(ANALYTICS_BUDGET_SETTLE, release, BudgetSettled)).settled
    listing = await bus.request(ANALYTICS_BUDGETS_LIST, BudgetListRequest(), BudgetList, actor=admin(actor_key))
    [row] = [b for b in listing.items if b.scope_id == "einkauf"]
    assert (row.spent, row.reserved, row.level) == (Decimal("0.10"), Decimal(0), "ok")
    # another department and another currency are not charged to this budget
    other = await check(bus, actor_key, "50", department="vertrieb")
    assert (other.allowed, other.reserved) == (True, False)


async def test_a_lost_redis_ledger_is_rebuilt_from_the_usage_events(env, actor_key):
    _handlers, bus, db, redis, prefix = env
    await put(bus, actor_key, scope="assistant", scope_id="a-rebuild", hard_limit=Decimal("2.00"))
    async with db.session() as session:
        for cost in ("0.75", "1.00"):
            fact = UsageRecorded(
                call_id=uuid.uuid4().hex,
                user_id="u-1",
                assistant_id="a-rebuild",
                routing=Routing(requested="default", provider="p", model="m"),
                usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
                cost=float(cost),
            )
            when = f"{PERIOD}-10T12:00:00Z"
            await store.record_usage(
                session, Envelope[UsageRecorded](type="usage.recorded", occurred_at=when, data=fact)
            )
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*a-rebuild*")]
    if keys:
        await redis.delete(*keys)  # Redis lost its data
    refused = await check(bus, actor_key, "0.30", assistant_id="a-rebuild")
    assert (refused.allowed, refused.blocked_by) == (False, "assistant:a-rebuild")  # 1.75 spent + 0.30 > 2.00
    allowed = await check(bus, actor_key, "0.25", assistant_id="a-rebuild")
    assert allowed.allowed


async def test_a_second_replica_learns_of_changes_and_deletes_lift_the_limit(env, actor_key, infra):
    _handlers, bus, db, redis, prefix = env
    other_bus = await Bus.connect(infra.nats_url, "analytics-test-replica", actor_key=actor_key)
    replica = BudgetHandlers(other_bus, db, BudgetLedger(redis, prefix=prefix), period=lambda: PERIOD)
    try:
        await replica.register()
        await put(bus, actor_key, scope="department", scope_id="recht", hard_limit=Decimal("0"))
        for _ in range(100):
            if ("department", "recht") in replica.budgets:
                break
            await asyncio.sleep(0.02)
        assert ("department", "recht") in replica.budgets
        deleted = await bus.request(
            ANALYTICS_BUDGETS_DELETE,
            BudgetKey(scope="department", scope_id="recht"),
            BudgetDeleted,
            actor=admin(actor_key),
        )
        assert deleted.deleted
        for _ in range(100):
            if ("department", "recht") not in replica.budgets:
                break
            await asyncio.sleep(0.02)
        assert ("department", "recht") not in replica.budgets
    finally:
        await other_bus.close()
    with pytest.raises(BusError) as info:
        await bus.request(
            ANALYTICS_BUDGETS_DELETE,
            BudgetKey(scope="department", scope_id="recht"),
            BudgetDeleted,
            actor=admin(actor_key),
        )
    assert info.value.status == 404
