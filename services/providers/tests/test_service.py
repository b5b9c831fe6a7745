"""The providers service on the real bus and Postgres: generate, models, usage facts, secrets, key rotation."""

import asyncio
import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError
from schleuse_common.contracts.providers import (
    PROVIDERS_GENERATE,
    PROVIDERS_MODELS,
    ChatMessage,
    GenerateChunk,
    GenerateRequest,
    ModelsRequest,
    ModelsResult,
)
from schleuse_common.contracts.usage import USAGE_RECORDED
from schleuse_common.crypto import DataKeyring, load_kek
from schleuse_common.db import Database, run_migrations
from schleuse_providers import config, demo_server, store
from schleuse_providers.handlers import REGISTRY_CHANGED, ProvidersService
from schleuse_providers.settings import ProvidersSettings

from .fakes.openai_fake import OpenAIFake

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
GOOD_KEY = "sk-good-0123456789abcdwxyz"
OLD_KEY = "sk-old-0123456789abcdefgh"


def _yaml(url: str, key: str) -> dict:
    return {
        "providers": [
            {
                "name": "local",
                "kind": "openai_compatible",
                "base_url": url,
                "api_key": key,
                "max_concurrency": 2,
                "models": [
                    {
                        "id": "mini",
                        "upstream_model": "mini-up",
                        "context_window": 4000,
                        "input_per_1m": 1.0,
                        "output_per_1m": 2.0,
                        "currency": "EUR",
                    },
                    {
                        "id": "big",
                        "upstream_model": "big-up",
                        "context_window": 100000,
                        "input_per_1m": 5.0,
                        "output_per_1m": 15.0,
                        "currency": "EUR",
                    },
                ],
            }
        ],
        "routing": {"default": "mini", "large": "big"},
    }


@pytest.fixture(scope="module")
async def env(infra, actor_key):
    await asyncio.to_thread(run_migrations, infra.database_url, "providers", MIGRATIONS)
    db = Database(infra.database_url, "providers")
    async with db.session() as session:  # a clean registry for this module
        for table in ("models", "providers", "routing", "registry_meta", "data_keys"):
            await session.execute(sa.text(f"DELETE FROM providers.{table}"))
    fake = OpenAIFake(api_key=GOOD_KEY)
    bus = await Bus.connect(infra.nats_url, f"providers-test-{uuid.uuid4().hex[:6]}", actor_key=actor_key)
    keyring = DataKeyring(store.data_keys, load_kek(infra))
    async with demo_server.running(app=fake) as url:
        # budgets are tested with analytics in test_budget_enforcement.py
        service = ProvidersService(bus, db, keyring, ProvidersSettings(refresh_seconds=3600, budget_checks=False))
        await service.start(_yaml(url, OLD_KEY))  # seeded with a stale key; rotated in a test below
        yield service, bus, db, keyring, url, fake
        await service.close()
    await bus.close()
    await db.dispose()


def _actor(actor_key: bytes) -> Actor:
    return Actor(id="u-test", roles=["user"], department="einkauf").signed(actor_key)


async def _generate(bus: Bus, actor: Actor, text: str, **kw) -> list[GenerateChunk]:
    request = GenerateRequest(messages=[ChatMessage(role="user", content=text)], **kw)
    return [c async for c in bus.request_stream(PROVIDERS_GENERATE, request, GenerateChunk, actor=actor)]


async def test_secrets_are_encrypted_at_rest_and_shown_masked(env):
    _, _, db, *_ = env
    async with db.session() as session:
        raw = (await session.execute(sa.text("SELECT secrets::text, settings::text FROM providers.providers"))).one()
        shown = await store.masked_providers(session)
    assert OLD_KEY not in raw[0] and OLD_KEY not in raw[1]
    assert shown[0]["secrets"] == {"api_key": "sk-o****efgh"}


async def test_key_rotation_takes_effect_without_restart(env, actor_key):
    service, bus, db, keyring, url, _ = env
    with pytest.raises(BusError) as info:
        await _generate(bus, _actor(actor_key), "Hallo")
    assert (info.value.code, info.value.status) == ("provider_auth_failed", 502)
    rotated = config.from_yaml(_yaml(url, GOOD_KEY)).providers[0]
    async with db.session() as session:
        await store.upsert_provider(session, keyring, rotated)
    version = service.registry_version
    await bus.nc.publish(REGISTRY_CHANGED, b"")
    for _ in range(100):
        if service.registry_version != version:
            break
        await asyncio.sleep(0.02)
    chunks = await _generate(bus, _actor(actor_key), "Hallo")
    assert "".join(c.delta for c in chunks) == demo_server.demo_answer("Hallo")


async def test_generate_streams_and_publishes_usage(env, actor_key):
    _, bus, *_ = env
    seen: list[dict] = []

    async def collect(msg) -> None:
        seen.append(json.loads(msg.data))

    sub = await bus.nc.subscribe(USAGE_RECORDED, cb=collect)
    try:
        chunks = await _generate(bus, _actor(actor_key), "Wie spät ist es?", assistant_id="a-1")
        for _ in range(100):
            if any(e["data"]["assistant_id"] == "a-1" and e["data"]["status"] == "ok" for e in seen):
                break
            await asyncio.sleep(0.02)
    finally:
        await sub.unsubscribe()
    final = chunks[-1]
    assert final.routing.model_dump() == {
        "requested": "default",
        "provider": "local",
        "model": "mini",
        "reason": "default",
        "demo": False,
    }
    assert final.cost == pytest.approx((final.usage.prompt_tokens * 1 + final.usage.completion_tokens * 2) / 1e6)
    [fact] = [e["data"] for e in seen if e["data"]["assistant_id"] == "a-1"]
    assert (fact["user_id"], fact["department"], fact["cost"], fact["currency"]) == (
        "u-test",
        "einkauf",
        final.cost,
        "EUR",
    )
    assert fact["usage"] == final.usage.model_dump() and fact["routing"]["model"] == "mini"
    assert "Wie spät" not in json.dumps(fact)  # ids and numbers only, never content


async def test_a_plain_completion_comes_back_as_one_chunk(env, actor_key):
    _, bus, *_ = env
    streamed = await _generate(bus, _actor(actor_key), "[[demo:long=30]] Erzähl etwas")
    plain = await _generate(bus, _actor(actor_key), "[[demo:long=30]] Erzähl etwas", stream=False)
    assert len(streamed) > 1 and len(plain) == 1
    assert plain[0].delta == "".join(c.delta for c in streamed)
    assert plain[0].finish_reason == "stop" and plain[0].usage == streamed[-1].usage


async def test_escalation_and_models_listing(env, actor_key):
    _, bus, *_ = env
    chunks = await _generate(bus, _actor(actor_key), "Bitte gründlich", model="large", allow_escalation=True)
    assert (chunks[-1].routing.model, chunks[-1].routing.reason) == ("big", "escalation_requested")
    listing = await bus.request(PROVIDERS_MODELS, ModelsRequest(), ModelsResult, actor=_actor(actor_key))
    assert [m.id for m in listing.models] == ["default", "large", "mini", "big"]
    assert not any(m.demo for m in listing.models)


async def test_rate_limit_reaches_the_caller_with_retry_after(env, actor_key):
    _, bus, *_ = env
    with pytest.raises(BusError) as info:
        await _generate(bus, _actor(actor_key), "[[demo:fail429]]")
    assert (info.value.code, info.value.status, info.value.retry_after) == ("provider_rate_limited", 429, 1.0)


async def test_unknown_model_is_a_clear_error(env, actor_key):
    _, bus, *_ = env
    with pytest.raises(BusError) as info:
        await _generate(bus, _actor(actor_key), "x", model="gpt-17")
    assert (info.value.code, info.value.status) == ("unknown_model", 404)


def test_an_empty_registry_falls_back_to_the_demo_provider():
    demo = config.catalogue_of(config.demo_config("http://127.0.0.1:8099/v1"))
    assert demo.routing.default == "schleuse-demo" and demo.providers["demo"].demo
