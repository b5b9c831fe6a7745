"""What happens when usage facts arrive: they are written once to the analytics schema."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter

from schleuse_analytics import store
from schleuse_common.bus import Bus, Envelope
from schleuse_common.contracts.usage import USAGE_RECORDED, UsageRecorded
from schleuse_common.db import Database

TOKENS = Counter("schleuse_tokens_total", "Tokens used", ["department", "model", "kind"])
COST = Counter("schleuse_cost_total", "Cost of provider calls", ["department", "currency"])


@dataclass
class AnalyticsHandlers:
    bus: Bus
    db: Database

    async def register(self) -> None:
        """Consume `usage.recorded` durably."""
        await self.bus.consume_batches(
            stream="USAGE",
            durable="analytics-usage",
            filter_subject=USAGE_RECORDED,
            data_model=UsageRecorded,
            handler=self.record,
        )

    async def record(self, envs: list[Envelope[UsageRecorded]]) -> None:
        """Store usage facts in one transaction and count each in the business metrics once."""
        async with self.db.session() as session:
            new = await store.record_usages(session, envs)
        for env in envs:
            if env.id not in new:
                continue
            new.discard(env.id)
            u = env.data
            dept = u.department or "-"
            TOKENS.labels(dept, u.routing.model, "prompt").inc(u.usage.prompt_tokens)
            TOKENS.labels(dept, u.routing.model, "completion").inc(u.usage.completion_tokens)
            COST.labels(dept, u.currency).inc(u.cost)
