"""`usage.recorded` from JetStream into the analytics schema: each fact once, whatever is redelivered."""

import asyncio
from pathlib import Path

import sqlalchemy as sa

from schleuse_analytics.handlers import AnalyticsHandlers
from schleuse_common.bus import Bus
from schleuse_common.contracts.providers import Routing, Usage
from schleuse_common.contracts.usage import USAGE_RECORDED, UsageRecorded
from schleuse_common.db import Database, run_migrations
from schleuse_common.ids import new_id
from schleuse_common.settings import InfraSettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def _fact(call_id: str, tokens: int) -> UsageRecorded:
    return UsageRecorded(
        call_id=call_id,
        user_id="u-analytics",
        department="Recht",
        routing=Routing(requested="default", provider="demo", model="schleuse-demo"),
        usage=Usage(prompt_tokens=tokens, completion_tokens=2 * tokens, total_tokens=3 * tokens),
        cost=0.5,
    )


async def test_usage_facts_are_stored_once_each(infra: InfraSettings, bus: Bus) -> None:
    await asyncio.to_thread(run_migrations, infra.database_url, "analytics", MIGRATIONS)
    db = Database(infra.database_url, "analytics")
    await AnalyticsHandlers(bus, db).register()
    calls = [new_id() for _ in range(30)]
    duplicate_id = new_id()
    await bus.publish(USAGE_RECORDED, _fact(calls[0], 1), id=duplicate_id)
    for i, call in enumerate(calls[1:], start=2):
        await bus.publish(USAGE_RECORDED, _fact(call, i))
    # The same envelope again without a Nats-Msg-Id header: JetStream stores it twice, as after its dedupe window.
    env = bus.envelope(_fact(calls[0], 1), type=USAGE_RECORDED, actor=None, id=duplicate_id)
    await bus.js.publish(USAGE_RECORDED, env)
    rows: list[sa.Row[tuple[str, int]]] = []
    for _ in range(100):
        async with db.session() as session:
            rows = list(
                (
                    await session.execute(
                        sa.text("SELECT call_id, total_tokens FROM analytics.usage_events WHERE call_id = ANY(:c)"),
                        {"c": calls},
                    )
                ).all()
            )
        if len(rows) >= len(calls):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # give a wrongly stored duplicate the time to show up
    async with db.session() as session:
        count = (
            await session.execute(
                sa.text("SELECT count(*) FROM analytics.usage_events WHERE call_id = ANY(:c)"), {"c": calls}
            )
        ).scalar_one()
    assert count == len(calls)
    assert dict(rows)[calls[0]] == 3 and dict(rows)[calls[5]] == 18
    await db.dispose()
