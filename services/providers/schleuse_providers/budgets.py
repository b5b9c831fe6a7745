"""Budget enforcement around a provider call: reserve the estimate at analytics, settle the real cost after.

Analytics owns the budgets and the atomic Redis ledger; this side knows routing, prices and real usage.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError, Unavailable
from schleuse_common.contracts.audit import audit_subject
from schleuse_common.contracts.budget import (
    ANALYTICS_BUDGET_CHECK,
    ANALYTICS_BUDGET_SETTLE,
    BUDGET_AUDIT_AREA,
    BudgetCheck,
    BudgetDecision,
    BudgetSettle,
    BudgetSettled,
)
from schleuse_common.contracts.policy import POLICY_EVENT, PolicyEvent
from schleuse_providers.domain.budget import NoBudgetsFlag

log = structlog.get_logger("schleuse.providers.budgets")

SOFT_LIMIT_KIND = "budget.soft_limit"  # `policy.event` kind when a call passes a soft limit
SETTLE_ATTEMPTS = 3


@dataclass(frozen=True)
class Hold:
    """A reservation analytics placed for one call; settle or release it exactly once."""

    call_id: str
    department: str | None
    assistant_id: str | None
    currency: str
    period: str


@dataclass
class BudgetGuard:
    """Asks `analytics.budget.check` before a call and `analytics.budget.settle` after it."""

    bus: Bus
    enabled: bool = True
    timeout: float = 2.0
    fail_open: bool = False
    flag: NoBudgetsFlag = field(default_factory=NoBudgetsFlag)
    _pending: set[asyncio.Task[Any]] = field(default_factory=set)

    async def start(self) -> None:
        """Forget "no budgets" as soon as any budget changes (audit facts are visible to plain subscribers)."""
        await self.bus.nc.subscribe(audit_subject(BUDGET_AUDIT_AREA, ">"), cb=self._on_budget_changed)

    async def _on_budget_changed(self, _msg: Any) -> None:
        self.flag.invalidate()

    async def reserve(
        self,
        *,
        call_id: str,
        department: str | None,
        assistant_id: str | None,
        estimate: float,
        currency: str,
        actor: Actor | None,
    ) -> Hold | None:
        """Hold the estimate; raises `budget_exceeded` (429) naming the budget when a hard limit would pass."""
        if not self.enabled or self.flag.skip(time.monotonic()):
            return None
        check = BudgetCheck(
            call_id=call_id,
            department=department,
            assistant_id=assistant_id,
            estimated_cost=Decimal(str(estimate)),
            currency=currency,
        )
        try:
            decision = await self.bus.request(
                ANALYTICS_BUDGET_CHECK, check, BudgetDecision, actor=actor, timeout=self.timeout
            )
        except Unavailable as e:
            if self.fail_open:
                log.warning("budget.check_unavailable_fail_open", call_id=call_id)
                return None
            raise BusError(
                "budget_check_unavailable",
                "the budget check is unavailable, so nothing was sent to a provider; try again shortly",
                503,
                retry_after=5.0,
            ) from e
        self.flag.observe(decision.configured, time.monotonic())
        if not decision.allowed:
            message = decision.message or f"the budget {decision.blocked_by} is exhausted"
            raise BusError("budget_exceeded", message, 429)
        if decision.soft_exceeded:
            self._spawn(self._soft_limit_event(call_id, department, assistant_id, decision, actor))
        if not decision.reserved:
            return None
        return Hold(call_id, department, assistant_id, currency, decision.period)

    def settle_later(self, hold: Hold, cost: float | None) -> None:
        """Settle the real cost (None: release the hold) off the hot path."""
        self._spawn(self.settle(hold, cost))

    async def settle(self, hold: Hold, cost: float | None) -> None:
        """Settle with a few retries; a hold that is never settled is returned by analytics after its expiry."""
        request = BudgetSettle(
            call_id=hold.call_id,
            department=hold.department,
            assistant_id=hold.assistant_id,
            actual_cost=None if cost is None else Decimal(str(cost)),
            currency=hold.currency,
            period=hold.period,
        )
        for attempt in range(1, SETTLE_ATTEMPTS + 1):
            try:
                await self.bus.request(ANALYTICS_BUDGET_SETTLE, request, BudgetSettled, timeout=self.timeout)
                return
            except BusError as exc:  # settle is idempotent: retrying is safe
                if attempt == SETTLE_ATTEMPTS:
                    log.error("budget.settle_failed", call_id=hold.call_id, error=exc.code)
                    return
                await asyncio.sleep(0.2 * attempt)

    async def _soft_limit_event(
        self,
        call_id: str,
        department: str | None,
        assistant_id: str | None,
        decision: BudgetDecision,
        actor: Actor | None,
    ) -> None:
        event = PolicyEvent(
            kind=SOFT_LIMIT_KIND,
            user_id=actor.id if actor is not None else None,
            department=department,
            assistant_id=assistant_id,
            decision="allow",
            detail=f"soft limit passed: {', '.join(decision.soft_exceeded)} ({decision.period})",
        )
        try:
            await self.bus.publish(POLICY_EVENT, event, actor=actor, id=f"budget-soft-{call_id}")
        except Exception as exc:  # never fail a call because an alert is slow
            log.error("budget.policy_event_failed", call_id=call_id, error=type(exc).__name__)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self, timeout: float = 2.0) -> None:
        """Wait for settles and events still in flight (at shutdown)."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout)
