"""Budget reservations against the real Redis: the hard limit holds under concurrency, soft limits warn."""

import asyncio
import uuid
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from schleuse_analytics.domain.budget import Budget, BudgetLedger, level_for, to_micros

PERIOD = "2026-11"


@pytest.fixture
async def ledger(infra):
    client = Redis.from_url(infra.redis_url)  # the session's real Redis (the machine's own when reachable)
    prefix = f"test:budget:{uuid.uuid4().hex}:"
    yield BudgetLedger(client, prefix=prefix)
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def _dept(hard: str | None = "10.00", soft: str | None = None, scope_id: str = "einkauf") -> Budget:
    return Budget(
        "department",
        scope_id,
        "EUR",
        soft_limit=Decimal(soft) if soft else None,
        hard_limit=Decimal(hard) if hard else None,
    )


async def test_fifty_concurrent_reservations_at_a_nearly_spent_budget_cannot_overspend(ledger):
    budget = _dept(hard="10.00")
    await ledger.seed_spent(budget, PERIOD, Decimal("9.70"))  # 0.30 left: room for exactly 3 calls of 0.10
    results = await asyncio.gather(*[ledger.reserve([budget], Decimal("0.10"), f"call-{i}", PERIOD) for i in range(50)])
    allowed = [r for r in results if r.allowed]
    refused = [r for r in results if not r.allowed]
    assert len(allowed) == 3 and len(refused) == 47
    assert all(r.blocked_by == budget and r.level == "hard" for r in refused)
    state = await ledger.state(budget, PERIOD)
    assert state.spent + state.reserved == Decimal("10.00")
    # settle the real (smaller) costs: the freed room is usable again, and the limit still holds
    for r in allowed:
        assert await ledger.settle([budget], r.reservation_id, Decimal("0.05"), PERIOD)
    state = await ledger.state(budget, PERIOD)
    assert (state.spent, state.reserved) == (Decimal("9.85"), Decimal("0"))
    again = await asyncio.gather(*[ledger.reserve([budget], Decimal("0.10"), f"late-{i}", PERIOD) for i in range(50)])
    assert sum(r.allowed for r in again) == 1


async def test_settle_is_idempotent_and_release_frees_the_hold(ledger):
    budget = _dept(hard="1.00")
    r = await ledger.reserve([budget], Decimal("0.40"), "c1", PERIOD)
    assert r.allowed and r.states[0].reserved == Decimal("0.40")
    assert await ledger.settle([budget], "c1", Decimal("0.25"), PERIOD) is True
    assert await ledger.settle([budget], "c1", Decimal("0.25"), PERIOD) is False
    r2 = await ledger.reserve([budget], Decimal("0.50"), "c2", PERIOD)
    await ledger.release([budget], "c2", PERIOD)
    state = await ledger.state(budget, PERIOD)
    assert (state.spent, state.reserved) == (Decimal("0.25"), Decimal("0"))
    assert r2.allowed


async def test_soft_limit_allows_but_says_so(ledger):
    budget = _dept(hard="2.00", soft="1.00")
    first = await ledger.reserve([budget], Decimal("0.90"), "a", PERIOD)
    second = await ledger.reserve([budget], Decimal("0.20"), "b", PERIOD)
    assert (first.allowed, first.level) == (True, "ok")
    assert (second.allowed, second.level, second.soft_exceeded) == (True, "soft", (budget,))


async def test_department_and_assistant_are_reserved_together_or_not_at_all(ledger):
    dept = _dept(hard="100.00")
    assistant = Budget("assistant", "a-1", "EUR", hard_limit=Decimal("0.50"))
    ok = await ledger.reserve([dept, assistant], Decimal("0.40"), "x1", PERIOD)
    refused = await ledger.reserve([dept, assistant], Decimal("0.40"), "x2", PERIOD)
    assert ok.allowed and not refused.allowed and refused.blocked_by == assistant
    state = await ledger.state(dept, PERIOD)
    assert state.reserved == Decimal("0.40")  # the refused call held nothing on the department either


async def test_expired_holds_of_crashed_callers_are_returned(ledger):
    ledger.hold_seconds = 0
    budget = _dept(hard="1.00")
    assert (await ledger.reserve([budget], Decimal("1.00"), "crashed", PERIOD)).allowed
    ledger.hold_seconds = 900
    await asyncio.sleep(1.1)  # Redis TIME has one-second resolution
    assert (await ledger.reserve([budget], Decimal("1.00"), "next", PERIOD)).allowed


async def test_no_hard_limit_never_refuses_and_duplicate_ids_are_rejected(ledger):
    budget = _dept(hard=None)
    assert (await ledger.reserve([budget], Decimal("1000"), "big", PERIOD)).allowed
    with pytest.raises(ValueError):
        await ledger.reserve([budget], Decimal("1"), "big", PERIOD)


def test_pure_levels_and_rounding():
    budget = _dept(hard="1.00", soft="0.50")
    assert [level_for(budget, to_micros(x)) for x in ("0.50", "0.51", "1.00", "1.000001")] == [
        "ok",
        "soft",
        "soft",
        "hard",
    ]
    assert to_micros(0.0000001) == 1  # estimates round up
