"""`/api/admin/budgets`: monthly budgets per department and assistant (admin), answered by analytics."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from schleuse_common.auth import Actor
from schleuse_common.contracts import budget as b
from schleuse_common.service import Runtime
from schleuse_gateway.deps import require_roles

PROBLEM = {"content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Unauthenticated", **PROBLEM},
    403: {"description": "Requires the admin role", **PROBLEM},
    404: {"description": "No such budget", **PROBLEM},
    422: {"description": "Invalid request (e.g. soft limit above hard limit)", **PROBLEM},
}

Admin = Annotated[Actor, Depends(require_roles("admin"))]
ScopeParam = Literal["department", "assistant"]


class BudgetLimits(BaseModel):
    """A monthly budget's currency and limits; scope and id come from the path."""

    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    soft_limit: Decimal | None = Field(default=None, ge=0, description="passing it is allowed, with a policy event")
    hard_limit: Decimal | None = Field(default=None, ge=0, description="calls that would pass it are refused")


def build_router(rt: Runtime) -> APIRouter:
    """The budget admin routes, bound to the runtime's bus."""
    bus = rt.bus
    router = APIRouter(prefix="/api/admin/budgets", tags=["admin: budgets"], responses=ERRORS)

    @router.get("", summary="Budgets with this month's spend and holds")
    async def list_budgets(actor: Admin, scope: Annotated[ScopeParam | None, Query()] = None) -> b.BudgetList:
        return await bus.request(
            b.ANALYTICS_BUDGETS_LIST, b.BudgetListRequest(scope=scope), b.BudgetList, actor=actor, timeout=10.0
        )

    @router.put("/{scope}/{scope_id}", summary="Create or change the budget of a department or assistant")
    async def put_budget(scope: ScopeParam, scope_id: str, body: BudgetLimits, actor: Admin) -> b.BudgetView:
        fields = b.BudgetFields(scope=scope, scope_id=scope_id, **body.model_dump())
        return await bus.request(b.ANALYTICS_BUDGETS_PUT, fields, b.BudgetView, actor=actor, timeout=10.0)

    @router.delete("/{scope}/{scope_id}", summary="Remove a budget (the scope is no longer limited)")
    async def delete_budget(scope: ScopeParam, scope_id: str, actor: Admin) -> b.BudgetDeleted:
        key = b.BudgetKey(scope=scope, scope_id=scope_id)
        return await bus.request(b.ANALYTICS_BUDGETS_DELETE, key, b.BudgetDeleted, actor=actor, timeout=10.0)

    return router
