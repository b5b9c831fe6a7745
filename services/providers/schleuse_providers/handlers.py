"""What happens on the bus: `providers.generate` (streamed), `providers.models`, registry reloads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from schleuse_common.bus import Bus, BusError, Envelope
from schleuse_common.contracts.providers import (
    PROVIDERS_GENERATE,
    PROVIDERS_MODELS,
    GenerateChunk,
    GenerateRequest,
    ModelInfo,
    ModelsRequest,
    ModelsResult,
    collapse,
)
from schleuse_common.contracts.usage import USAGE_RECORDED, UsageRecorded
from schleuse_common.crypto import DataKeyring
from schleuse_common.db import Database
from schleuse_providers import config, store
from schleuse_providers.adapters.factory import adapter_factory
from schleuse_providers.adapters.tokens import best_counter
from schleuse_providers.admin_handlers import REGISTRY_CHANGED, RegistryAdmin
from schleuse_providers.budgets import BudgetGuard
from schleuse_providers.dispatch import CallOutcome, Dispatcher
from schleuse_providers.domain.budget import NoBudgetsFlag
from schleuse_providers.domain.cost import estimate_chain_cost
from schleuse_providers.domain.errors import ProviderError
from schleuse_providers.domain.model import Catalogue, ProviderSpec
from schleuse_providers.domain.resilience import RetryPolicy
from schleuse_providers.domain.routing import allowed_models
from schleuse_providers.settings import ProvidersSettings

log = structlog.get_logger("schleuse.providers")

RETIRE_GRACE_SECONDS = 330.0  # longer than a call's total timeout, so no call loses its client


def to_bus_error(error: ProviderError) -> BusError:
    """Domain error -> the bus error envelope (status maps to HTTP at the gateway, retry-after kept)."""
    return BusError(error.code, error.message, error.status, error.retry_after)


@dataclass
class ProvidersService:
    bus: Bus
    db: Database
    keyring: DataKeyring
    settings: ProvidersSettings
    dispatcher: Dispatcher | None = None
    registry_version: int = -1
    budgets: BudgetGuard = field(init=False)
    _pending: set[asyncio.Task[Any]] = field(default_factory=set)

    def __post_init__(self) -> None:
        s = self.settings
        self.budgets = BudgetGuard(
            self.bus,
            enabled=s.budget_checks,
            timeout=s.budget_timeout_seconds,
            fail_open=s.budget_fail_open,
            flag=NoBudgetsFlag(ttl=s.budget_none_ttl_seconds),
        )

    async def start(self, yaml_config: dict[str, Any]) -> None:
        """Seed the registry from schleuse.yaml, load it into memory, answer the subjects."""
        seeded = config.from_yaml(yaml_config)
        if seeded.providers:
            async with self.db.session() as session:
                await store.seed(session, self.keyring, seeded)
        await self.reload()
        await self.budgets.start()
        await self.bus.serve_stream(PROVIDERS_GENERATE, GenerateRequest, self.generate)
        await self.bus.serve(PROVIDERS_MODELS, ModelsRequest, self.models)
        await RegistryAdmin(self).register()
        await self.bus.nc.subscribe(REGISTRY_CHANGED, cb=self._on_changed)

    async def _on_changed(self, _msg: Any) -> None:
        await self.reload()

    async def reload(self, *, force: bool = False) -> bool:
        """Re-read the registry when its version moved (a rotated key takes effect without restart)."""
        async with self.db.session() as session:
            current = await store.version(session)
            if current == self.registry_version and not force:
                return False
            loaded = await store.load(session, self.keyring)
        catalogue, secrets = self._catalogue(loaded)
        catalogue = _with_secret_versions(catalogue, secrets)
        if self.dispatcher is None:
            self.dispatcher = Dispatcher(
                catalogue,
                adapter_factory(secrets),
                counter=best_counter(),
                retry=RetryPolicy(attempts_per_model=self.settings.attempts_per_model),
                breaker_threshold=self.settings.breaker_threshold,
                breaker_reset=self.settings.breaker_reset_seconds,
            )
        else:
            self.dispatcher.adapter_factory = adapter_factory(secrets)
            await self.dispatcher.replace_catalogue(catalogue)
            self._spawn(self._close_retired_later())
        self.registry_version = loaded.version
        log.info("registry.loaded", version=loaded.version, providers=len(catalogue.providers))
        return True

    def _catalogue(self, loaded: store.LoadedRegistry) -> tuple[Catalogue, dict[str, dict[str, str]]]:
        try:
            return config.catalogue_of(loaded.config), loaded.secrets
        except ValueError:
            log.warning("registry.empty_using_demo")
            return config.catalogue_of(config.demo_config(self.settings.demo_url)), {}

    async def _close_retired_later(self) -> None:
        await asyncio.sleep(RETIRE_GRACE_SECONDS)
        if self.dispatcher is not None:
            await self.dispatcher.close_retired()

    async def refresh_forever(self) -> None:
        """Periodic check of the registry version (one tiny query), for replicas that missed the message."""
        while True:
            await asyncio.sleep(self.settings.refresh_seconds)
            try:
                await self.reload()
            except Exception as exc:  # keep serving with the registry we have
                log.warning("registry.refresh_failed", error=type(exc).__name__)

    async def generate(self, env: Envelope[GenerateRequest]) -> AsyncIterator[GenerateChunk]:
        """Stream one completion; the last chunk carries usage, routing, cost. Usage is published off the path.

        After routing and before the upstream call, the estimated cost is reserved on the caller's budgets;
        the real cost from the final chunk settles it (a failed call releases it).
        """
        assert self.dispatcher is not None
        dispatcher = self.dispatcher
        request = env.data
        actor = env.actor
        department = request.department or (actor.department if actor is not None else None)
        try:
            decided = dispatcher.decide(request)
        except ProviderError as error:
            raise to_bus_error(error) from None
        route, prompt_tokens = decided
        hold = await self.budgets.reserve(
            call_id=env.id,
            department=department,
            assistant_id=request.assistant_id,
            estimate=estimate_chain_cost(route.chain, prompt_tokens, request.max_tokens),
            currency=route.model.currency,
            actor=actor,
        )
        settled = False

        async def finished(outcome: CallOutcome) -> None:
            nonlocal settled
            self._spawn(self._publish_usage(env.id, actor, request, outcome))
            if hold is not None and not settled:
                settled = True
                self.budgets.settle_later(hold, outcome.cost if outcome.status == "ok" else None)

        try:
            if request.stream:
                async for chunk in dispatcher.generate(request, finished, decided):
                    yield chunk
            else:  # the caller waits for the whole answer anyway: one bus message instead of one per token
                yield collapse([chunk async for chunk in dispatcher.generate(request, finished, decided)])
        except ProviderError as error:
            raise to_bus_error(error) from None
        finally:
            if hold is not None and not settled:  # closed before the dispatcher began: nothing was spent
                settled = True
                self.budgets.settle_later(hold, None)

    async def _publish_usage(self, call_id: str, actor: Any, request: GenerateRequest, outcome: CallOutcome) -> None:
        if outcome.routing is None:
            return
        fact = UsageRecorded(
            call_id=call_id,
            user_id=actor.id if actor is not None else "anonymous",
            department=request.department or (actor.department if actor is not None else None),
            assistant_id=request.assistant_id,
            routing=outcome.routing,
            usage=outcome.usage,
            cost=outcome.cost,
            currency=outcome.currency,
            latency_ms=outcome.latency_ms,
            status=outcome.status,
        )
        try:
            await self.bus.publish(USAGE_RECORDED, fact, actor=actor, id=f"usage-{call_id}")
        except Exception as exc:  # never fail a call because accounting is slow; log without content
            log.error("usage.publish_failed", call_id=call_id, error=type(exc).__name__)

    async def models(self, env: Envelope[ModelsRequest]) -> ModelsResult:
        """The aliases and the catalogue models the caller's department may use (routing's `models` lists)."""
        assert self.dispatcher is not None
        catalogue = self.dispatcher.catalogue
        demo = all(p.demo for p in catalogue.providers.values())
        infos = [ModelInfo(id=alias, provider="schleuse", demo=demo) for alias in ("default", "large")]
        for model in allowed_models(catalogue, env.data.department):
            provider = catalogue.providers[model.provider]
            infos.append(
                ModelInfo(id=model.id, provider=provider.name, context_window=model.context_window, demo=provider.demo)
            )
        return ModelsResult(models=infos)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        await self.budgets.drain()
        pending = [task for task in self._pending if not task.done()]
        if pending:  # usage facts in flight get two seconds together; retired-client timers are just cancelled
            _, late = await asyncio.wait(pending, timeout=2)
            for task in late:
                task.cancel()
        if self.dispatcher is not None:
            await self.dispatcher.aclose()


def _with_secret_versions(catalogue: Catalogue, secrets: dict[str, dict[str, str]]) -> Catalogue:
    """Providers whose secrets changed must count as changed, so the dispatcher rebuilds their clients."""

    def tagged(spec: ProviderSpec) -> ProviderSpec:
        digest = hash(tuple(sorted(secrets.get(spec.name, {}).items())))
        return replace(spec, secret_version=digest)

    return replace(catalogue, providers={name: tagged(spec) for name, spec in catalogue.providers.items()})
