"""`/api/admin/dlp/policies`: DLP policies per department and assistant, allow-list terms, fail-open (admin).

Routes check the role and translate HTTP to `dlp.policies.*` requests; the dlp service owns the policies,
checks the role again, validates the entity types and publishes `audit.dlp.policy_put|policy_delete` after
each committed change (ids, flags and counts; allow-list terms only counted). That audit fact is also what
tells every dlp replica and chat (which keeps the fail-open scopes) to reload.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schleuse_common.auth import Actor
from schleuse_common.contracts import dlp as d
from schleuse_common.service import Runtime
from schleuse_gateway.deps import HTTPProblem, require_roles

PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Unauthenticated", **PROBLEM},
    403: {"description": "Requires the admin role", **PROBLEM},
    404: {"description": "No policy for this scope", **PROBLEM},
    422: {"description": "Invalid policy (e.g. an unknown entity type)", **PROBLEM},
    503: {"description": "The DLP service is unavailable; nothing was changed", **PROBLEM},
}

Admin = Annotated[Actor, Depends(require_roles("admin"))]
NamedScope = Literal["department", "assistant"]
TIMEOUT = 10.0


class PolicyRules(BaseModel):
    """A policy as PUT: what to do with each entity type; the scope comes from the path."""

    model_config = ConfigDict(extra="forbid")

    default_action: d.Action = Field(default="redact", description="for entity types not listed in `actions`")
    actions: dict[str, d.Action] = Field(
        default_factory=lambda: dict(d.SECRETS_BLOCKED),
        description="entity type (`IBAN`, `PERSON`, `EMAIL`, ...) -> redact | mask | hash | block | allow",
    )
    allow_terms: list[str] = Field(
        default_factory=list, max_length=1000, description="never findings: the organisation's name, public officials"
    )
    min_score: float = Field(default=0.0, ge=0.0, le=1.0, description="findings below this confidence are ignored")
    enabled_types: list[str] | None = Field(default=None, description="act only on these types (null: all)")
    fail_open: bool = Field(
        default=False,
        description="while DLP is unavailable, send this scope's turns unscanned (audited each time) instead of "
        "refusing them",
    )

    def doc(self, scope: d.PolicyScope, scope_id: str | None) -> d.PolicyDoc:
        """The contract's policy document for a scope (422 when the scope id does not fit)."""
        try:
            return d.PolicyDoc(scope=scope, scope_id=scope_id, **self.model_dump())
        except ValidationError as e:
            raise HTTPProblem(422, "Invalid request", "scope_id: 1 to 128 characters", code="invalid_policy") from e


def build_router(rt: Runtime) -> APIRouter:
    """The DLP policy admin routes, bound to the runtime's bus."""
    bus = rt.bus
    router = APIRouter(prefix="/api/admin/dlp/policies", tags=["admin: dlp"], responses=ERRORS)

    async def put(doc: d.PolicyDoc, actor: Actor) -> d.PolicyDoc:
        listing = await bus.request(
            d.DLP_POLICIES_PUT, d.PolicyPut(policy=doc), d.PoliciesList, actor=actor, timeout=TIMEOUT
        )
        return next((p for p in listing.policies if (p.scope, p.scope_id) == (doc.scope, doc.scope_id)), doc)

    async def delete(scope: d.PolicyScope, scope_id: str | None, actor: Actor) -> d.PolicyDeleted:
        key = d.PolicyDelete(scope=scope, scope_id=scope_id)
        deleted = await bus.request(d.DLP_POLICIES_DELETE, key, d.PolicyDeleted, actor=actor, timeout=TIMEOUT)
        if not deleted.deleted:
            raise HTTPProblem(404, "Not found", "no DLP policy for this scope", code="not_found")
        return deleted

    @router.get("", summary="Every DLP policy: the default, then departments and assistants")
    async def list_policies(actor: Admin) -> d.PoliciesList:
        return await bus.request(
            d.DLP_POLICIES_LIST, d.PoliciesListRequest(), d.PoliciesList, actor=actor, timeout=TIMEOUT
        )

    @router.put("/default", summary="Replace the default policy (applies where no more specific one exists)")
    async def put_default(body: PolicyRules, actor: Admin) -> d.PolicyDoc:
        return await put(body.doc("default", None), actor)

    @router.put("/{scope}/{scope_id}", summary="Create or replace the policy of a department or assistant")
    async def put_scoped(scope: NamedScope, scope_id: str, body: PolicyRules, actor: Admin) -> d.PolicyDoc:
        return await put(body.doc(scope, scope_id), actor)

    @router.delete("/default", summary="Reset the default policy to the built-in one (redact all, block secrets)")
    async def delete_default(actor: Admin) -> d.PolicyDeleted:
        return await delete("default", None, actor)

    @router.delete("/{scope}/{scope_id}", summary="Remove a department's or assistant's policy (the default applies)")
    async def delete_scoped(scope: NamedScope, scope_id: str, actor: Admin) -> d.PolicyDeleted:
        return await delete(scope, scope_id, actor)

    return router
