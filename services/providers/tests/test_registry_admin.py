"""`providers.admin.*` on the real bus and Postgres: masked secrets, validation, audit, reload, /models filter."""

import asyncio
import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError
from schleuse_common.contracts import providers_admin as pa
from schleuse_common.contracts.providers import PROVIDERS_MODELS, ModelsRequest, ModelsResult
from schleuse_common.crypto import DataKeyring, load_kek
from schleuse_common.db import Database, run_migrations
from schleuse_providers import store
from schleuse_providers.handlers import ProvidersService
from schleuse_providers.settings import ProvidersSettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
KEY = "sk-admin-0123456789abcdwxyz"
ROTATED = "sk-rotated-0123456789abcdqrst"


@pytest.fixture(scope="module")
async def env(infra, actor_key):
    await asyncio.to_thread(run_migrations, infra.database_url, "providers", MIGRATIONS)
    db = Database(infra.database_url, "providers")
    async with db.session() as session:
        for table in ("models", "providers", "routing", "registry_meta", "data_keys"):
            await session.execute(sa.text(f"DELETE FROM providers.{table}"))
    bus = await Bus.connect(infra.nats_url, f"providers-admin-{uuid.uuid4().hex[:6]}", actor_key=actor_key)
    await bus.ensure_streams()
    keyring = DataKeyring(store.data_keys, load_kek(infra))
    service = ProvidersService(bus, db, keyring, ProvidersSettings(refresh_seconds=3600, budget_checks=False))
    await service.start({})
    yield service, bus, db
    await service.close()
    await bus.close()
    await db.dispose()


def _admin(key: bytes) -> Actor:
    return Actor(id="u-admin", roles=["admin"]).signed(key)


async def _ask(bus, subject, data, reply, key):
    return await bus.request(subject, data, reply, actor=_admin(key))


async def test_admins_manage_providers_models_and_routing_with_masked_secrets(env, actor_key):
    service, bus, _db = env
    audits: list[dict] = []

    async def collect(msg) -> None:
        audits.append(json.loads(msg.data))

    sub = await bus.nc.subscribe("audit.providers.>", cb=collect)
    provider = pa.ProviderInput(
        name="azure-eu",
        kind="azure",
        base_url="https://example.openai.azure.com",
        api_key=KEY,
        api_version="2024-10-21",
        models=[pa.ModelFields(id="gpt-mini", upstream_model="dep-mini", input_per_1m=0.25, output_per_1m=2.0)],
    )
    view = await _ask(bus, pa.PROVIDERS_ADMIN_PUT, provider, pa.ProviderView, actor_key)
    assert view.secrets == {"api_key": "sk-a****wxyz"} and view.models == ["gpt-mini"]
    assert KEY not in view.model_dump_json()
    # a change without secrets and without models keeps both
    patch = pa.ProviderInput(name="azure-eu", kind="azure", base_url="https://example.openai.azure.com", max_queue=3)
    view = await _ask(bus, pa.PROVIDERS_ADMIN_PUT, patch, pa.ProviderView, actor_key)
    assert (view.secrets, view.models, view.max_queue) == ({"api_key": "sk-a****wxyz"}, ["gpt-mini"], 3)
    rotated = patch.model_copy(update={"api_key": ROTATED})
    view = await _ask(bus, pa.PROVIDERS_ADMIN_PUT, rotated, pa.ProviderView, actor_key)
    assert view.secrets == {"api_key": "sk-r****qrst"}

    large = pa.ModelInput(provider="azure-eu", id="gpt-large", upstream_model="dep-large", context_window=200_000)
    await _ask(bus, pa.MODELS_ADMIN_PUT, large, pa.ModelView, actor_key)
    routing = pa.RoutingSettings(
        default="gpt-mini", large="gpt-large", departments={"einkauf": pa.RoutingScope(models=[])}
    )
    await _ask(bus, pa.ROUTING_ADMIN_PUT, routing, pa.RoutingSettings, actor_key)
    assert service.dispatcher.catalogue.routing.large == "gpt-large"  # reloaded at once

    listing = await _ask(bus, pa.PROVIDERS_ADMIN_LIST, pa.AdminListRequest(), pa.ProviderList, actor_key)
    assert KEY not in listing.model_dump_json() and ROTATED not in listing.model_dump_json()
    models = await _ask(bus, pa.MODELS_ADMIN_LIST, pa.AdminListRequest(), pa.ModelList, actor_key)
    assert [(m.id, m.provider) for m in models.items] == [("gpt-large", "azure-eu"), ("gpt-mini", "azure-eu")]

    # /v1/models: einkauf may use only its aliases' models, other departments every model
    user = Actor(id="u-1", roles=["user"], department="einkauf").signed(actor_key)
    einkauf = await bus.request(PROVIDERS_MODELS, ModelsRequest(department="einkauf"), ModelsResult, actor=user)
    others = await bus.request(PROVIDERS_MODELS, ModelsRequest(department="vertrieb"), ModelsResult, actor=user)
    assert [m.id for m in einkauf.models] == ["default", "large", "gpt-mini", "gpt-large"]
    routing = pa.RoutingSettings(
        default="gpt-mini", large="gpt-large", departments={"einkauf": pa.RoutingScope(large="gpt-mini", models=[])}
    )
    await _ask(bus, pa.ROUTING_ADMIN_PUT, routing, pa.RoutingSettings, actor_key)
    einkauf = await bus.request(PROVIDERS_MODELS, ModelsRequest(department="einkauf"), ModelsResult, actor=user)
    assert [m.id for m in einkauf.models] == ["default", "large", "gpt-mini"]
    assert [m.id for m in others.models] == ["default", "large", "gpt-mini", "gpt-large"]

    await bus.nc.flush()
    await asyncio.sleep(0.1)
    await sub.unsubscribe()
    actions = [a["data"]["action"] for a in audits]
    assert actions[:4] == [
        "providers.provider_created",
        "providers.provider_updated",
        "providers.provider_updated",
        "providers.model_saved",
    ]
    assert audits[2]["data"]["detail"]["secrets_changed"] is True and ROTATED not in json.dumps(audits)


async def test_changes_that_break_routing_are_refused_and_rolled_back(env, actor_key):
    _service, bus, _ = env
    with pytest.raises(BusError) as info:
        await _ask(bus, pa.MODELS_ADMIN_DELETE, pa.ByName(name="gpt-mini"), pa.RegistryDeleted, actor_key)
    assert (info.value.code, info.value.status) == ("registry_invalid", 409) and "gpt-mini" in info.value.message
    models = await _ask(bus, pa.MODELS_ADMIN_LIST, pa.AdminListRequest(), pa.ModelList, actor_key)
    assert "gpt-mini" in [m.id for m in models.items]
    bad = pa.RoutingSettings(default="gpt-17")
    with pytest.raises(BusError) as info:
        await _ask(bus, pa.ROUTING_ADMIN_PUT, bad, pa.RoutingSettings, actor_key)
    assert info.value.status == 409
    with pytest.raises(BusError) as info:
        await _ask(bus, pa.PROVIDERS_ADMIN_DELETE, pa.ByName(name="nope"), pa.RegistryDeleted, actor_key)
    assert info.value.status == 404


async def test_only_admins_may_read_or_change_the_registry(env, actor_key):
    _, bus, _ = env
    user = Actor(id="u-1", roles=["user", "dpo"]).signed(actor_key)
    for subject, data, reply in (
        (pa.PROVIDERS_ADMIN_LIST, pa.AdminListRequest(), pa.ProviderList),
        (pa.ROUTING_ADMIN_PUT, pa.RoutingSettings(), pa.RoutingSettings),
    ):
        with pytest.raises(BusError) as info:
            await bus.request(subject, data, reply, actor=user)
        assert info.value.status == 403
