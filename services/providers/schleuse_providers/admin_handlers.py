"""`providers.admin.*`: admins manage providers, the model catalogue and routing over the bus.

Every change is validated against the whole registry in the same transaction (routing must still name
existing models), audited on `audit.providers.<action>`, and announced on `providers.registry.changed` so
every replica reloads at once. Secrets are accepted, stored encrypted, and only ever returned masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from schleuse_common.bus import BusError, Envelope
from schleuse_common.contracts.audit import AuditEvent, audit_subject
from schleuse_common.contracts.providers_admin import (
    MODELS_ADMIN_DELETE,
    MODELS_ADMIN_LIST,
    MODELS_ADMIN_PUT,
    PROVIDERS_ADMIN_DELETE,
    PROVIDERS_ADMIN_LIST,
    PROVIDERS_ADMIN_PUT,
    PROVIDERS_AUDIT_AREA,
    ROUTING_ADMIN_GET,
    ROUTING_ADMIN_PUT,
    AdminListRequest,
    ByName,
    ModelInput,
    ModelList,
    ModelView,
    ProviderInput,
    ProviderList,
    ProviderView,
    RegistryDeleted,
    RoutingSettings,
)
from schleuse_providers import config, store

if TYPE_CHECKING:
    from schleuse_providers.handlers import ProvidersService

REGISTRY_CHANGED = "providers.registry.changed"  # core NATS, between this service's replicas


@dataclass
class RegistryAdmin:
    service: ProvidersService

    async def register(self) -> None:
        bus = self.service.bus
        await bus.serve(PROVIDERS_ADMIN_LIST, AdminListRequest, self.list_providers)
        await bus.serve(PROVIDERS_ADMIN_PUT, ProviderInput, self.put_provider)
        await bus.serve(PROVIDERS_ADMIN_DELETE, ByName, self.delete_provider)
        await bus.serve(MODELS_ADMIN_LIST, AdminListRequest, self.list_models)
        await bus.serve(MODELS_ADMIN_PUT, ModelInput, self.put_model)
        await bus.serve(MODELS_ADMIN_DELETE, ByName, self.delete_model)
        await bus.serve(ROUTING_ADMIN_GET, AdminListRequest, self.get_routing)
        await bus.serve(ROUTING_ADMIN_PUT, RoutingSettings, self.put_routing)

    # -- providers -------------------------------------------------------------------------

    async def list_providers(self, env: Envelope[AdminListRequest]) -> ProviderList:
        """Every provider with masked secrets."""
        _require_admin(env)
        async with self.service.db.session() as session:
            rows = await store.provider_rows(session)
        return ProviderList(items=[ProviderView.model_validate(r) for r in rows])

    async def put_provider(self, env: Envelope[ProviderInput]) -> ProviderView:
        """Create or replace a provider; secrets left out are kept (key rotation: send the new key)."""
        _require_admin(env)
        data = env.data
        keep_models = data.models is None
        provider = config.ProviderConfig.model_validate(
            {**data.model_dump(exclude={"models"}), "models": [m.model_dump() for m in data.models or []]}
        )
        async with self.service.db.session() as session:
            created = await store.upsert_provider(
                session, self.service.keyring, provider, replace_models=not keep_models
            )
            await _validate(session, self.service)
            rows = await store.provider_rows(session)
        await self._changed(
            env,
            "provider_created" if created else "provider_updated",
            "provider",
            data.name,
            kind=data.kind,
            enabled=data.enabled,
            secrets_changed=bool(provider.secrets()),
            models_replaced=not keep_models,
        )
        return ProviderView.model_validate(next(r for r in rows if r["name"] == data.name))

    async def delete_provider(self, env: Envelope[ByName]) -> RegistryDeleted:
        """Remove a provider, its models and its secrets (its data key is shredded)."""
        _require_admin(env)
        name = env.data.name
        async with self.service.db.session() as session:
            if not await store.provider_exists(session, name):
                raise BusError("provider_not_found", f"no provider named {name!r}", 404)
            await store.delete_provider(session, self.service.keyring, name)
            await _validate(session, self.service)
        await self._changed(env, "provider_deleted", "provider", name)
        return RegistryDeleted(name=name)

    # -- models ----------------------------------------------------------------------------

    async def list_models(self, env: Envelope[AdminListRequest]) -> ModelList:
        """The catalogue with context windows, capabilities and prices."""
        _require_admin(env)
        async with self.service.db.session() as session:
            rows = await store.model_rows(session)
        return ModelList(items=[ModelView.model_validate(r) for r in rows])

    async def put_model(self, env: Envelope[ModelInput]) -> ModelView:
        """Create or change a catalogue model of an existing provider (prices, context, capabilities)."""
        _require_admin(env)
        data = env.data
        async with self.service.db.session() as session:
            if not await store.provider_exists(session, data.provider):
                raise BusError("provider_not_found", f"no provider named {data.provider!r}", 404)
            model = config.ModelConfig.model_validate(data.model_dump(exclude={"provider"}))
            await store.upsert_model(session, data.provider, model)
            await _validate(session, self.service)
            rows = await store.model_rows(session)
        await self._changed(env, "model_saved", "model", data.id, provider=data.provider, enabled=data.enabled)
        return ModelView.model_validate(next(r for r in rows if r["id"] == data.id))

    async def delete_model(self, env: Envelope[ByName]) -> RegistryDeleted:
        _require_admin(env)
        async with self.service.db.session() as session:
            if not await store.delete_model(session, env.data.name):
                raise BusError("model_not_found", f"no model {env.data.name!r}", 404)
            await _validate(session, self.service)
        await self._changed(env, "model_deleted", "model", env.data.name)
        return RegistryDeleted(name=env.data.name)

    # -- routing ---------------------------------------------------------------------------

    async def get_routing(self, env: Envelope[AdminListRequest]) -> RoutingSettings:
        _require_admin(env)
        async with self.service.db.session() as session:
            current = await store.routing_config(session)
        return RoutingSettings.model_validate(current.model_dump())

    async def put_routing(self, env: Envelope[RoutingSettings]) -> RoutingSettings:
        """Replace the routing (aliases, per-department and per-assistant scopes, fallbacks)."""
        _require_admin(env)
        routing = config.RoutingConfig.model_validate(env.data.model_dump())
        async with self.service.db.session() as session:
            await store.set_routing(session, routing)
            await _validate(session, self.service)
        await self._changed(
            env,
            "routing_updated",
            "routing",
            "routing",
            departments=len(routing.departments),
            assistants=len(routing.assistants),
        )
        return RoutingSettings.model_validate(routing.model_dump())

    # -- after every change ----------------------------------------------------------------

    async def _changed(
        self, env: Envelope[Any], action: str, target_type: str, target_id: str, **detail: str | int | bool | None
    ) -> None:
        bus = self.service.bus
        event = AuditEvent(
            action=f"{PROVIDERS_AUDIT_AREA}.{action}", target_type=target_type, target_id=target_id, detail=detail
        )
        await bus.publish(audit_subject(PROVIDERS_AUDIT_AREA, action), event, actor=env.actor)
        await self.service.reload()
        await bus.nc.publish(REGISTRY_CHANGED, b"")


async def _validate(session: AsyncSession, service: ProvidersService) -> None:
    """Refuse (and roll back) a change after which routing names missing models or nothing can route."""
    loaded = await store.load(session, service.keyring)
    unknown = config.unknown_routing_names(loaded.config)
    if unknown:
        raise BusError(
            "registry_invalid",
            f"routing names models that do not exist: {', '.join(unknown)}; change routing first",
            409,
        )
    if any(p.enabled and m.enabled for p in loaded.config.providers for m in p.models):  # else: the demo
        try:
            config.catalogue_of(loaded.config)
        except ValueError as e:
            raise BusError("registry_invalid", str(e), 409) from None


def _require_admin(env: Envelope[Any]) -> None:
    if env.actor is None or not env.actor.has_role("admin"):
        raise BusError("forbidden", "requires the admin role", 403)
