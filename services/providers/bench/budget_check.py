"""What the budget check adds to `providers.generate`: sequential calls against the in-process demo upstream.

Run: SCHLEUSE_NATS_URL=... .venv/bin/python services/providers/bench/budget_check.py [calls]
Prints median and p95 per mode: checks off, on with no budget (cached "none": no request), on with a budget.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from decimal import Decimal

import sqlalchemy as sa
from redis.asyncio import Redis

from schleuse_analytics.budgets import BudgetHandlers
from schleuse_analytics.domain.budget import BudgetLedger
from schleuse_analytics.main import SPEC as ANALYTICS
from schleuse_common.auth import Actor, load_or_create_key
from schleuse_common.bus import Bus
from schleuse_common.contracts.budget import ANALYTICS_BUDGETS_PUT, BudgetFields, BudgetView
from schleuse_common.contracts.providers import PROVIDERS_GENERATE, ChatMessage, GenerateChunk, GenerateRequest
from schleuse_common.crypto import DataKeyring, load_kek
from schleuse_common.db import Database, ensure_database, run_migrations
from schleuse_common.settings import InfraSettings
from schleuse_providers import demo_server, store
from schleuse_providers.handlers import ProvidersService
from schleuse_providers.main import SPEC as PROVIDERS
from schleuse_providers.settings import ProvidersSettings


async def _measure(bus: Bus, actor: Actor, n: int) -> list[float]:
    request = GenerateRequest(messages=[ChatMessage(role="user", content="Hallo")], max_tokens=20)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        _ = [c async for c in bus.request_stream(PROVIDERS_GENERATE, request, GenerateChunk, actor=actor)]
        out.append((time.perf_counter() - t) * 1000)
    return out


async def main(n: int) -> None:
    # a database of its own: the bench clears budgets and seeds a registry
    infra = InfraSettings(database_url="postgresql://postgres@127.0.0.1:5432/schleuse_bench_budgets")
    ensure_database(infra.database_url)
    for spec in (PROVIDERS, ANALYTICS):
        assert spec.schema and spec.migrations
        await asyncio.to_thread(run_migrations, infra.database_url, spec.schema, spec.migrations)
    key = load_or_create_key(infra.internal_key_file)
    pdb, adb = Database(infra.database_url, "providers"), Database(infra.database_url, "analytics")
    async with adb.session() as session:
        await session.execute(sa.text("DELETE FROM analytics.budgets"))
    redis = Redis.from_url(infra.redis_url)
    bus = await Bus.connect(infra.nats_url, "bench-budget", actor_key=key)
    await bus.ensure_streams()
    await BudgetHandlers(bus, adb, BudgetLedger(redis, prefix=f"bench:{uuid.uuid4().hex}:")).register()
    actor = Actor(id="u-bench", roles=["user", "admin"], department="bench").signed(key)
    async with demo_server.running() as url:
        registry = {"providers": [{"name": "d", "kind": "openai_compatible", "base_url": url, "max_concurrency": 5,
                                   "models": [{"id": "m", "input_per_1m": 1, "output_per_1m": 1}]}]}  # fmt: skip
        results = {}
        for mode in ("off", "no budget", "budget"):
            settings = ProvidersSettings(refresh_seconds=3600, budget_checks=mode != "off")
            pbus = await Bus.connect(infra.nats_url, f"bench-providers-{mode}", actor_key=key)
            service = ProvidersService(pbus, pdb, DataKeyring(store.data_keys, load_kek(infra)), settings)
            await service.start(registry)
            await pbus.nc.flush()
            if mode == "budget":
                fields = BudgetFields(scope="department", scope_id="bench", hard_limit=Decimal(1000))
                await bus.request(ANALYTICS_BUDGETS_PUT, fields, BudgetView, actor=actor)
            await _measure(bus, actor, 20)  # warm-up
            results[mode] = await _measure(bus, actor, n)
            await service.close()
            await pbus.close()  # the next mode's instance serves the subjects alone
    for mode, ms in results.items():
        p95 = statistics.quantiles(ms, n=20)[-1]
        print(f"{mode:>10}: median {statistics.median(ms):.2f} ms  p95 {p95:.2f} ms  ({n} calls)")
    await bus.close()
    await redis.aclose()
    await pdb.dispose()
    await adb.dispose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
