"""`/api/admin/providers`, `/api/admin/models`, `/api/admin/routing`: the provider registry (admin).

Routes check the role and translate HTTP to `providers.admin.*` requests; the providers service owns the
registry, checks the role again, validates, audits and reloads every replica. Secrets are write-only.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from schleuse_common.auth import Actor
from schleuse_common.contracts import providers_admin as pa
from schleuse_common.service import Runtime
from schleuse_gateway.deps import HTTPProblem, require_roles

R = TypeVar("R", bound=BaseModel)

PROBLEM = {"content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Unauthenticated", **PROBLEM},
    403: {"description": "Requires the admin role", **PROBLEM},
    404: {"description": "Not found", **PROBLEM},
    409: {"description": "The change would leave routing naming missing models", **PROBLEM},
    422: {"description": "Invalid request", **PROBLEM},
}

Admin = Annotated[Actor, Depends(require_roles("admin"))]


class ProviderBody(pa.ProviderInput):
    """A provider as PUT: the name comes from the path."""

    name: str = ""


class ModelBody(pa.ModelInput):
    """A model as PUT: the id comes from the path."""

    id: str = ""


def build_router(rt: Runtime) -> APIRouter:
    """The registry admin routes, bound to the runtime's bus."""
    bus = rt.bus
    router = APIRouter(prefix="/api/admin", tags=["admin: providers"], responses=ERRORS)

    async def ask(subject: str, data: BaseModel, reply: type[R], actor: Actor) -> R:
        return await bus.request(subject, data, reply, actor=actor, timeout=10.0)

    @router.get("/providers", summary="Providers with masked secrets")
    async def list_providers(actor: Admin) -> pa.ProviderList:
        return await ask(pa.PROVIDERS_ADMIN_LIST, pa.AdminListRequest(), pa.ProviderList, actor)

    @router.put("/providers/{name}", summary="Create or replace a provider (rotate a key by sending the new one)")
    async def put_provider(name: str, body: ProviderBody, actor: Admin) -> pa.ProviderView:
        _same(body.name, name)
        data = pa.ProviderInput.model_validate({**body.model_dump(), "name": name})
        return await ask(pa.PROVIDERS_ADMIN_PUT, data, pa.ProviderView, actor)

    @router.delete("/providers/{name}", summary="Remove a provider, its models and its secrets")
    async def delete_provider(name: str, actor: Admin) -> pa.RegistryDeleted:
        return await ask(pa.PROVIDERS_ADMIN_DELETE, pa.ByName(name=name), pa.RegistryDeleted, actor)

    @router.get("/models", summary="The model catalogue with context windows and prices")
    async def list_models(actor: Admin) -> pa.ModelList:
        return await ask(pa.MODELS_ADMIN_LIST, pa.AdminListRequest(), pa.ModelList, actor)

    @router.put("/models/{model_id}", summary="Create or change a catalogue model (prices, context, capabilities)")
    async def put_model(model_id: str, body: ModelBody, actor: Admin) -> pa.ModelView:
        _same(body.id, model_id)
        data = pa.ModelInput.model_validate({**body.model_dump(), "id": model_id})
        return await ask(pa.MODELS_ADMIN_PUT, data, pa.ModelView, actor)

    @router.delete("/models/{model_id}", summary="Remove a catalogue model")
    async def delete_model(model_id: str, actor: Admin) -> pa.RegistryDeleted:
        return await ask(pa.MODELS_ADMIN_DELETE, pa.ByName(name=model_id), pa.RegistryDeleted, actor)

    @router.get("/routing", summary="Aliases, department and assistant scopes, fallback chains")
    async def get_routing(actor: Admin) -> pa.RoutingSettings:
        return await ask(pa.ROUTING_ADMIN_GET, pa.AdminListRequest(), pa.RoutingSettings, actor)

    @router.put("/routing", summary="Replace the routing")
    async def put_routing(body: pa.RoutingSettings, actor: Admin) -> pa.RoutingSettings:
        return await ask(pa.ROUTING_ADMIN_PUT, body, pa.RoutingSettings, actor)

    return router


def _same(in_body: str, in_path: str) -> None:
    if in_body and in_body != in_path:
        raise HTTPProblem(422, "Invalid request", "the name in the body differs from the one in the path")
