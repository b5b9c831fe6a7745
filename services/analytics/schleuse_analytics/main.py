"""Entry point: `python -m schleuse_analytics` or `schleuse-analytics`."""

from __future__ import annotations

from pathlib import Path

from schleuse_analytics.budgets import BudgetHandlers
from schleuse_analytics.domain.budget import BudgetLedger
from schleuse_analytics.handlers import AnalyticsHandlers
from schleuse_analytics.settings import AnalyticsSettings
from schleuse_common import service
from schleuse_common.service import Runtime, ServiceSpec

SPEC = ServiceSpec(
    name="analytics",
    schema="analytics",
    migrations=Path(__file__).parent.parent / "migrations",
    uses_redis=True,
)


async def wire(rt: Runtime) -> None:
    assert rt.db is not None and rt.redis is not None
    assert isinstance(rt.settings, AnalyticsSettings)
    settings = rt.settings
    await AnalyticsHandlers(rt.bus, rt.db).register()
    ledger = BudgetLedger(rt.redis, prefix=settings.budget_key_prefix, hold_seconds=settings.budget_hold_seconds)
    budgets = BudgetHandlers(rt.bus, rt.db, ledger, refresh_seconds=settings.budget_refresh_seconds)
    await budgets.register()
    rt.spawn(budgets.refresh_forever(), "analytics-budget-refresh")


def main() -> None:
    service.main(SPEC, AnalyticsSettings, wire)


if __name__ == "__main__":
    main()
