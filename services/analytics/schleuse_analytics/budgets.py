"""What happens on `analytics.budget.*`: reserve before a call, settle after it, and the admins' budget list.

Budget definitions are cached in memory (refreshed when `audit.budgets.>` says they changed, and every
`budget_refresh_seconds`), so a check is at most one Redis round trip and none when no budget applies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog

from schleuse_analytics import store
from schleuse_analytics.domain.budget import (
    Budget,
    BudgetLedger,
    applicable,
    month_period,
    refusal_message,
)
from schleuse_common.bus import Bus, BusError, Envelope
from schleuse_common.contracts.audit import AuditEvent, audit_subject
from schleuse_common.contracts.budget import (
    ANALYTICS_BUDGET_CHECK,
    ANALYTICS_BUDGET_SETTLE,
    ANALYTICS_BUDGETS_DELETE,
    ANALYTICS_BUDGETS_LIST,
    ANALYTICS_BUDGETS_PUT,
    BUDGET_AUDIT_AREA,
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
from schleuse_common.db import Database

log = structlog.get_logger("schleuse.analytics.budgets")


@dataclass
class BudgetHandlers:
    bus: Bus
    db: Database
    ledger: BudgetLedger
    refresh_seconds: float = 10.0
    period: Callable[[], str] = month_period
    version: int = -1
    budgets: dict[tuple[str, str], tuple[Budget, datetime]] = field(default_factory=dict)
    _by_key: dict[tuple[str, str], Budget] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def register(self) -> None:
        """Load the budgets, answer the subjects, listen for changes made by any replica."""
        self.ledger.spent_source = self._spent_from_usage
        await self.refresh(force=True)
        await self.bus.serve(ANALYTICS_BUDGET_CHECK, BudgetCheck, self.check)
        await self.bus.serve(ANALYTICS_BUDGET_SETTLE, BudgetSettle, self.settle)
        await self.bus.serve(ANALYTICS_BUDGETS_LIST, BudgetListRequest, self.list)
        await self.bus.serve(ANALYTICS_BUDGETS_PUT, BudgetFields, self.put)
        await self.bus.serve(ANALYTICS_BUDGETS_DELETE, BudgetKey, self.delete)
        # audit facts are JetStream messages, but plain subscribers see them too: a cheap change signal
        await self.bus.nc.subscribe(audit_subject(BUDGET_AUDIT_AREA, ">"), cb=self._on_changed)

    async def _on_changed(self, _msg: Any) -> None:
        await self.refresh()

    async def refresh(self, *, force: bool = False) -> bool:
        """Re-read the budget definitions when their version moved."""
        async with self._lock:
            async with self.db.session() as session:
                current = await store.budgets_version(session)
                if current == self.version and not force:
                    return False
                version, loaded = await store.load_budgets(session)
            self.budgets = loaded
            self._by_key = {key: budget for key, (budget, _) in loaded.items()}
            self.version = version
        log.info("budgets.loaded", version=version, budgets=len(loaded))
        return True

    async def refresh_forever(self) -> None:
        """Periodic version check, for replicas that missed a change signal."""
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except Exception as exc:  # keep answering with the budgets we have
                log.warning("budgets.refresh_failed", error=type(exc).__name__)

    async def _spent_from_usage(self, budget: Budget, period: str) -> Decimal:
        async with self.db.session() as session:
            spent = await store.spent_in(session, budget, period)
        log.info("budgets.ledger_seeded", budget=budget.name, period=period)
        return spent

    # -- the hot path ----------------------------------------------------------------------

    async def check(self, env: Envelope[BudgetCheck]) -> BudgetDecision:
        """Hold the estimated cost on every applicable budget, or refuse naming the budget that is spent."""
        req = env.data
        period = self.period()
        budgets = applicable(self._by_key, req.department, req.assistant_id, req.currency)
        if not budgets:
            return BudgetDecision(allowed=True, period=period, configured=bool(self._by_key))
        try:
            r = await self.ledger.reserve(budgets, req.estimated_cost, req.call_id, period)
        except ValueError:  # the same call asked twice (redelivery): its hold stands
            return BudgetDecision(allowed=True, period=period, reserved=True)
        if not r.allowed:
            assert r.blocked_by is not None
            state = next(s for s in r.states if s.budget == r.blocked_by)
            return BudgetDecision(
                allowed=False,
                level="hard",
                blocked_by=r.blocked_by.name,
                message=refusal_message(state, r.amount),
                period=period,
            )
        return BudgetDecision(
            allowed=True,
            level=r.level,
            soft_exceeded=[b.name for b in r.soft_exceeded],
            period=period,
            reserved=True,
        )

    async def settle(self, env: Envelope[BudgetSettle]) -> BudgetSettled:
        """Charge the real cost (or release the hold); idempotent on the call id."""
        req = env.data
        budgets = applicable(self._by_key, req.department, req.assistant_id, req.currency)
        if req.actual_cost is None:
            done = await self.ledger.release(budgets, req.call_id, req.period)
        else:
            done = await self.ledger.settle(budgets, req.call_id, req.actual_cost, req.period)
        return BudgetSettled(settled=done)

    # -- admin -----------------------------------------------------------------------------

    async def list(self, env: Envelope[BudgetListRequest]) -> BudgetList:
        """Every budget with this month's spend (admin)."""
        _require_admin(env)
        await self.refresh()
        period = self.period()
        items = []
        for (scope, _), (budget, updated_at) in sorted(self.budgets.items()):
            if env.data.scope is not None and scope != env.data.scope:
                continue
            items.append(await self._view(budget, updated_at, period))
        return BudgetList(items=items)

    async def put(self, env: Envelope[BudgetFields]) -> BudgetView:
        """Create or change a budget (admin); audited, and every replica refreshes its cache."""
        _require_admin(env)
        data = env.data
        if data.soft_limit is not None and data.hard_limit is not None and data.soft_limit > data.hard_limit:
            raise BusError("invalid_budget", "the soft limit must not exceed the hard limit", 422)
        budget = Budget(data.scope, data.scope_id, data.currency, data.soft_limit, data.hard_limit)
        async with self.db.session() as session:
            created = await store.put_budget(session, budget)
        await self.refresh()
        action = "created" if created else "updated"
        detail = {
            "currency": budget.currency,
            "soft_limit": _text(budget.soft_limit),
            "hard_limit": _text(budget.hard_limit),
        }
        await self._audit(env, action, budget.name, detail)
        _, updated_at = self.budgets[(budget.scope, budget.scope_id)]
        return await self._view(budget, updated_at, self.period())

    async def delete(self, env: Envelope[BudgetKey]) -> BudgetDeleted:
        """Remove a budget (admin); its scope is no longer limited."""
        _require_admin(env)
        key = env.data
        async with self.db.session() as session:
            deleted = await store.delete_budget(session, key.scope, key.scope_id)
        if not deleted:
            raise BusError("budget_not_found", f"no budget for {key.scope} '{key.scope_id}'", 404)
        await self.refresh()
        await self._audit(env, "deleted", f"{key.scope}:{key.scope_id}", {})
        return BudgetDeleted(scope=key.scope, scope_id=key.scope_id)

    async def _view(self, budget: Budget, updated_at: datetime, period: str) -> BudgetView:
        await self.ledger.ensure_seeded(budget, period)
        state = await self.ledger.state(budget, period)
        return BudgetView(
            scope=budget.scope,
            scope_id=budget.scope_id,
            currency=budget.currency,
            soft_limit=budget.soft_limit,
            hard_limit=budget.hard_limit,
            period=period,
            spent=state.spent,
            reserved=state.reserved,
            level=state.level,
            updated_at=updated_at,
        )

    async def _audit(self, env: Envelope[Any], action: str, target: str, detail: dict[str, Any]) -> None:
        event = AuditEvent(
            action=f"{BUDGET_AUDIT_AREA}.{action}", target_type="budget", target_id=target, detail=detail
        )
        await self.bus.publish(audit_subject(BUDGET_AUDIT_AREA, action), event, actor=env.actor)


def _require_admin(env: Envelope[Any]) -> None:
    if env.actor is None or not env.actor.has_role("admin"):
        raise BusError("forbidden", "requires the admin role", 403)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
