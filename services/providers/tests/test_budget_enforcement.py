"""Budgets enforced on `providers.generate` with the real analytics handlers, NATS, Postgres and Redis.

50 concurrent calls at a nearly spent hard budget: exactly what fits is allowed. A soft limit emits a
`policy.event`. Streamed cost is settled from the final usage for every provider kind, through each
provider's official SDK against its fake.
"""

import asyncio
import json
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis

from schleuse_analytics import store as analytics_store
from schleuse_analytics.budgets import BudgetHandlers
from schleuse_analytics.domain.budget import Budget, BudgetLedger
from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError, Envelope
from schleuse_common.contracts.budget import ANALYTICS_BUDGETS_PUT, BudgetFields, BudgetView
from schleuse_common.contracts.policy import POLICY_EVENT
from schleuse_common.contracts.providers import (
    PROVIDERS_GENERATE,
    ChatMessage,
    GenerateChunk,
    GenerateRequest,
    Routing,
    Usage,
)
from schleuse_common.contracts.usage import UsageRecorded
from schleuse_common.crypto import DataKeyring, load_kek
from schleuse_common.db import Database, run_migrations
from schleuse_providers import demo_server, store
from schleuse_providers.domain.cost import estimate_chain_cost
from schleuse_providers.handlers import ProvidersService
from schleuse_providers.settings import ProvidersSettings

from .fakes import anthropic_fake, bedrock_fake, openai_fake
from .fakes.anthropic_fake import AnthropicFake
from .fakes.bedrock_fake import BedrockFake
from .fakes.openai_fake import OpenAIFake

ROOT = Path(__file__).resolve().parents[3]
PERIOD = "2031-07"
KINDS = ("openai", "azure", "anthropic", "bedrock", "openai_compatible")
PRICES = {"input_per_1m": 2000.0, "output_per_1m": 1000.0, "currency": "EUR"}  # large, so costs are visible


class GatedFake(OpenAIFake):
    """An OpenAI-compatible server that holds every answer until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(api_key="sk-local-0123456789abcdwxyz")
        self.gate = asyncio.Event()

    async def handle(self, request, send) -> None:
        await self.gate.wait()
        await super().handle(request, send)


def _registry(urls: dict[str, str]) -> dict:
    def model(mid: str, upstream: str) -> dict:
        return {"id": mid, "upstream_model": upstream, "context_window": 100_000, **PRICES}

    timeouts = {"first_token_timeout": 30, "total_timeout": 60}
    return {
        "providers": [
            {"name": "oai", "kind": "openai", "base_url": urls["openai"], "api_key": openai_fake.API_KEY,
             "models": [model("m-openai", "gpt-5-mini")], **timeouts},
            {"name": "az", "kind": "azure", "base_url": urls["azure"], "api_key": openai_fake.API_KEY,
             "api_version": "2024-10-21", "models": [model("m-azure", "gpt5-mini-prod")], **timeouts},
            {"name": "ant", "kind": "anthropic", "base_url": urls["anthropic"], "api_key": anthropic_fake.API_KEY,
             "models": [model("m-anthropic", "claude-fake-1")], **timeouts},
            {"name": "bed", "kind": "bedrock", "base_url": urls["bedrock"], "region": "eu-central-1",
             "aws_access_key_id": bedrock_fake.ACCESS_KEY, "aws_secret_access_key": "fake-secret-key-0123456789",
             "models": [model("m-bedrock", "eu.anthropic.claude-fake-v1:0")], **timeouts},
            {"name": "local", "kind": "openai_compatible", "base_url": urls["openai_compatible"],
             "api_key": "sk-local-0123456789abcdwxyz", "max_concurrency": 50, "max_queue": 50,
             "models": [model("m-openai_compatible", "llama-local")], **timeouts},
        ],
        "routing": {"default": "m-openai_compatible"},
    }  # fmt: skip


@pytest.fixture(scope="module")
async def env(infra, actor_key):
    for schema in ("providers", "analytics"):
        await asyncio.to_thread(run_migrations, infra.database_url, schema, ROOT / "services" / schema / "migrations")
    pdb, adb = Database(infra.database_url, "providers"), Database(infra.database_url, "analytics")
    async with pdb.session() as session:
        for table in ("models", "providers", "routing", "registry_meta", "data_keys"):
            await session.execute(sa.text(f"DELETE FROM providers.{table}"))
    async with adb.session() as session:
        await session.execute(sa.text("DELETE FROM analytics.budgets"))
    redis = Redis.from_url(infra.redis_url)
    prefix = f"test:enforce:{uuid.uuid4().hex}:"
    bus = await Bus.connect(infra.nats_url, f"budget-test-{uuid.uuid4().hex[:6]}", actor_key=actor_key)
    await bus.ensure_streams()
    ledger = BudgetLedger(redis, prefix=prefix)
    analytics = BudgetHandlers(bus, adb, ledger, period=lambda: PERIOD)
    await analytics.register()
    gated = GatedFake()
    async with (
        demo_server.running(app=OpenAIFake()) as openai_url,
        demo_server.running(app=OpenAIFake(azure=True), path="") as azure_url,
        demo_server.running(app=AnthropicFake(), path="") as anthropic_url,
        demo_server.running(app=BedrockFake(), path="") as bedrock_url,
        demo_server.running(app=gated) as local_url,
    ):
        urls = {"openai": openai_url, "azure": azure_url, "anthropic": anthropic_url, "bedrock": bedrock_url}
        urls["openai_compatible"] = local_url
        keyring = DataKeyring(store.data_keys, load_kek(infra))
        settings = ProvidersSettings(refresh_seconds=3600, budget_none_ttl_seconds=0.5)
        service = ProvidersService(bus, pdb, keyring, settings)
        await service.start(_registry(urls))
        yield service, analytics, ledger, bus, adb, gated
        await service.close()
    await bus.close()
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
    await pdb.dispose()
    await adb.dispose()


def _user(key: bytes, department: str = "einkauf") -> Actor:
    return Actor(id=f"u-{uuid.uuid4().hex[:8]}", roles=["user"], department=department).signed(key)


def _admin(key: bytes) -> Actor:
    return Actor(id="u-admin", roles=["admin"]).signed(key)


async def _generate(bus: Bus, actor: Actor, **kw) -> list[GenerateChunk]:
    request = GenerateRequest(messages=[ChatMessage(role="user", content="Hallo, wie geht es?")], **kw)
    return [c async for c in bus.request_stream(PROVIDERS_GENERATE, request, GenerateChunk, actor=actor)]


async def _settled(ledger: BudgetLedger, budget: Budget) -> tuple[Decimal, Decimal]:
    """Spent and reserved once every hold is settled (settling runs off the hot path)."""
    state = await ledger.state(budget, PERIOD)
    for _ in range(200):
        if state.reserved == 0:
            break
        await asyncio.sleep(0.02)
        state = await ledger.state(budget, PERIOD)
    return state.spent, state.reserved


async def test_fifty_concurrent_calls_at_a_nearly_spent_budget_allow_exactly_what_fits(env, actor_key):
    service, _analytics, ledger, bus, adb, gated = env
    # 9.70 EUR already spent this month (as usage events: the Redis ledger is rebuilt from them)
    async with adb.session() as session:
        for cost in (4.5, 5.2):
            fact = UsageRecorded(
                call_id=uuid.uuid4().hex,
                user_id="u-earlier",
                department="einkauf",
                routing=Routing(requested="default", provider="local", model="m-openai_compatible"),
                usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
                cost=cost,
            )
            occurred = datetime.fromisoformat(f"{PERIOD}-03T08:00:00+00:00")
            await analytics_store.record_usage(
                session, Envelope[UsageRecorded](type="usage.recorded", occurred_at=occurred, data=fact)
            )
    fields = BudgetFields(scope="department", scope_id="einkauf", hard_limit=Decimal("10.00"))
    await bus.request(ANALYTICS_BUDGETS_PUT, fields, BudgetView, actor=_admin(actor_key))
    budget = Budget("department", "einkauf", "EUR", hard_limit=Decimal("10.00"))

    # a call is estimated at its prompt plus 100 answer tokens; 0.30 EUR of room holds `fits` such estimates
    request = GenerateRequest(messages=[ChatMessage(role="user", content="Hallo, wie geht es?")], max_tokens=100)
    route, prompt_tokens = service.dispatcher.decide(request)
    estimate = Decimal(str(estimate_chain_cost(route.chain, prompt_tokens, 100)))
    fits = int(Decimal("0.30") / estimate)
    assert estimate > Decimal("0.10") and fits == 2

    async def call() -> list[GenerateChunk]:
        return await _generate(bus, _user(actor_key), max_tokens=100)

    tasks = [asyncio.create_task(call()) for _ in range(50)]
    refused: list[BusError] = []
    pending = set(tasks)
    while len(refused) < 50 - fits and pending:  # the allowed calls wait at the gated upstream meanwhile
        done, pending = await asyncio.wait(pending, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert done, "calls neither refused nor answered"
        refused += [t.exception() for t in done if t.exception() is not None]
    gated.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    gated.gate.clear()
    answered = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(answered) == fits and len(errors) == 50 - fits
    assert all(isinstance(e, BusError) and (e.code, e.status) == ("budget_exceeded", 429) for e in errors)
    assert "department 'einkauf'" in errors[0].message and "10.00 EUR" in errors[0].message
    # the real costs replace the holds: spent is what was spent before plus what the answers cost
    spent, reserved = await _settled(ledger, budget)
    real = sum(Decimal(str(chunks[-1].cost)) for chunks in answered)
    assert reserved == 0 and spent == Decimal("9.70") + real and spent <= Decimal("10.00")


async def test_passing_a_soft_limit_is_allowed_and_emits_a_policy_event(env, actor_key):
    _, _, _, bus, _, gated = env
    gated.gate.set()
    fields = BudgetFields(scope="assistant", scope_id="a-soft", soft_limit=Decimal("0"), hard_limit=None)
    await bus.request(ANALYTICS_BUDGETS_PUT, fields, BudgetView, actor=_admin(actor_key))
    events: list[dict] = []

    async def collect(msg) -> None:
        events.append(json.loads(msg.data))

    sub = await bus.nc.subscribe(POLICY_EVENT, cb=collect)
    try:
        chunks = await _generate(bus, _user(actor_key, "vertrieb"), assistant_id="a-soft", max_tokens=50)
        for _ in range(200):
            if events:
                break
            await asyncio.sleep(0.02)
    finally:
        await sub.unsubscribe()
    assert chunks[-1].finish_reason and chunks[-1].cost > 0
    [event] = [e["data"] for e in events if e["data"]["assistant_id"] == "a-soft"]
    assert (event["kind"], event["decision"], event["department"]) == ("budget.soft_limit", "allow", "vertrieb")
    assert "assistant:a-soft" in event["detail"] and "Hallo" not in json.dumps(event)


@pytest.mark.parametrize("kind", KINDS)
async def test_streamed_cost_is_settled_from_the_final_usage(env, actor_key, kind):
    _, _, ledger, bus, _, gated = env
    gated.gate.set()
    assistant = f"a-stream-{kind}"
    fields = BudgetFields(scope="assistant", scope_id=assistant, hard_limit=Decimal("1000"))
    await bus.request(ANALYTICS_BUDGETS_PUT, fields, BudgetView, actor=_admin(actor_key))
    chunks = await _generate(bus, _user(actor_key, "recht"), model=f"m-{kind}", assistant_id=assistant)
    final = chunks[-1]
    assert final.routing.model == f"m-{kind}" and not final.usage.estimated  # the provider's own streamed usage
    expected = (final.usage.prompt_tokens * PRICES["input_per_1m"] + final.usage.completion_tokens * 1000.0) / 1e6
    assert final.cost == pytest.approx(expected) and final.cost > 0
    budget = Budget("assistant", assistant, "EUR", hard_limit=Decimal("1000"))
    spent, reserved = await _settled(ledger, budget)
    assert (spent, reserved) == (Decimal(str(final.cost)), Decimal(0))


async def test_a_failed_call_releases_its_hold(env, actor_key):
    _, _, ledger, bus, _, gated = env
    gated.gate.set()
    fields = BudgetFields(scope="assistant", scope_id="a-fail", hard_limit=Decimal("1000"))
    await bus.request(ANALYTICS_BUDGETS_PUT, fields, BudgetView, actor=_admin(actor_key))
    request = GenerateRequest(
        messages=[ChatMessage(role="user", content="[[demo:fail400]]")], model="m-openai", assistant_id="a-fail"
    )
    markers = [k async for k in ledger.redis.scan_iter(match=f"{ledger.prefix}settled:*")]
    with pytest.raises(BusError) as info:
        actor = _user(actor_key, "recht")
        _ = [c async for c in bus.request_stream(PROVIDERS_GENERATE, request, GenerateChunk, actor=actor)]
    assert info.value.code == "provider_bad_request"
    spent, reserved = await _settled(ledger, Budget("assistant", "a-fail", "EUR"))
    assert (spent, reserved) == (Decimal(0), Decimal(0))
    after = [k async for k in ledger.redis.scan_iter(match=f"{ledger.prefix}settled:*")]
    assert len(after) == len(markers) + 1  # a hold was placed, then released exactly once
