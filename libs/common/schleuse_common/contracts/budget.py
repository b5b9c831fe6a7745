"""`analytics.budget.*`: budgets per department and assistant, checked before and settled after every call.

Money travels as decimal strings (`"12.50"`), never floats, so limits and costs add up exactly.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

ANALYTICS_BUDGET_CHECK = "analytics.budget.check"
ANALYTICS_BUDGET_SETTLE = "analytics.budget.settle"
ANALYTICS_BUDGETS_LIST = "analytics.budgets.list"
ANALYTICS_BUDGETS_PUT = "analytics.budgets.put"
ANALYTICS_BUDGETS_DELETE = "analytics.budgets.delete"

BUDGET_AUDIT_AREA = "budgets"  # `audit.budgets.<created|updated|deleted>`; also tells caches to refresh

Scope = Literal["department", "assistant"]
Level = Literal["ok", "soft", "hard"]


class BudgetCheck(BaseModel):
    """Reserve the estimated cost of one call on every budget that applies to it (or on none)."""

    call_id: str = Field(min_length=1, max_length=128, description="idempotency key; settle with the same id")
    department: str | None = None
    assistant_id: str | None = None
    estimated_cost: Decimal = Field(ge=0)
    currency: str = Field(default="EUR", min_length=3, max_length=3)


class BudgetDecision(BaseModel):
    """Allowed or refused; `blocked_by` names the budget (`department:einkauf`) that refused."""

    allowed: bool
    level: Level = "ok"
    blocked_by: str | None = None
    message: str | None = Field(default=None, description="human-readable reason, names the budget; no content")
    soft_exceeded: list[str] = Field(default_factory=list, description="budgets past their soft limit")
    period: str = Field(description="the monthly period the hold is on, `YYYY-MM`; pass it back on settle")
    reserved: bool = Field(default=False, description="whether a hold was placed (false: no budget applied)")
    configured: bool = Field(default=True, description="false: no budget exists at all; callers may skip checks")


class BudgetSettle(BaseModel):
    """Replace the hold of `call_id` by the real cost; `actual_cost` null releases it (the call failed)."""

    call_id: str = Field(min_length=1, max_length=128)
    department: str | None = None
    assistant_id: str | None = None
    actual_cost: Decimal | None = Field(default=None, ge=0)
    currency: str = Field(default="EUR", min_length=3, max_length=3)
    period: str = Field(pattern=r"^\d{4}-\d{2}$")


class BudgetSettled(BaseModel):
    settled: bool = Field(description="false when this call id was settled before (idempotent)")


class BudgetKey(BaseModel):
    scope: Scope
    scope_id: str = Field(min_length=1, max_length=128)


class BudgetFields(BudgetKey):
    """What an admin sets: a monthly budget of one department or assistant, in one currency."""

    currency: str = Field(default="EUR", min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")
    soft_limit: Decimal | None = Field(
        default=None, ge=0, description="passing it is allowed but raises a policy event"
    )
    hard_limit: Decimal | None = Field(default=None, ge=0, description="calls that would pass it are refused")


class BudgetView(BudgetFields):
    """A budget with this month's spend (`spent` settled, `reserved` held by calls in flight)."""

    period: str
    spent: Decimal
    reserved: Decimal
    level: Level
    updated_at: datetime


class BudgetListRequest(BaseModel):
    scope: Scope | None = None


class BudgetList(BaseModel):
    items: list[BudgetView] = Field(default_factory=list)


class BudgetDeleted(BudgetKey):
    deleted: bool = True
