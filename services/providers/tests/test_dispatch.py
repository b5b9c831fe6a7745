"""The dispatcher against demo servers: routing, usage, cost, retries, fallback, breaker, limits."""

import asyncio

import pytest

from schleuse_common.contracts.providers import ChatMessage, GenerateRequest
from schleuse_providers import demo_server
from schleuse_providers.adapters.factory import adapter_factory
from schleuse_providers.dispatch import CallOutcome, Dispatcher
from schleuse_providers.domain.errors import (
    AuthenticationFailed,
    MalformedResponse,
    Saturated,
    UpstreamTimeout,
)
from schleuse_providers.domain.model import Timeouts
from schleuse_providers.domain.resilience import RetryPolicy

from .catalogue import catalogue


@pytest.fixture(scope="module")
async def servers():
    main_state, backup_state = demo_server.DemoState(), demo_server.DemoState()
    async with (
        demo_server.running(app=demo_server.DemoApp(main_state)) as main,
        demo_server.running(app=demo_server.DemoApp(backup_state)) as backup,
    ):
        yield (main, backup), main_state, backup_state


def _reset(state: demo_server.DemoState) -> demo_server.DemoState:
    state.__init__()  # fresh switches and counters for each test
    return state


@pytest.fixture
def urls(servers):
    _reset(servers[1])
    _reset(servers[2])
    return servers[0]


@pytest.fixture
def main_state(servers, urls):
    return servers[1]


@pytest.fixture
def backup_state(servers, urls):
    return servers[2]


class Recorder:
    def __init__(self) -> None:
        self.outcomes: list[CallOutcome] = []
        self.sleeps: list[float] = []

    async def finished(self, outcome: CallOutcome) -> None:
        self.outcomes.append(outcome)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
def recorder():
    return Recorder()


def _dispatcher(urls, recorder, **kw) -> Dispatcher:
    main, backup = urls
    cat = catalogue(base_url=main, backup_url=backup, **kw)
    return Dispatcher(
        cat,
        adapter_factory({}),
        retry=RetryPolicy(attempts_per_model=2),
        sleep=recorder.sleep,
        breaker_threshold=3,
    )


def _request(text: str = "Hallo", **kw) -> GenerateRequest:
    return GenerateRequest(messages=[ChatMessage(role="user", content=text)], **kw)


async def _collect(dispatcher: Dispatcher, request: GenerateRequest, recorder: Recorder):
    chunks = [c async for c in dispatcher.generate(request, recorder.finished)]
    return "".join(c.delta for c in chunks), chunks[-1]


async def test_answer_carries_routing_usage_and_cost(urls, recorder, main_state):
    dispatcher = _dispatcher(urls, recorder)
    text, final = await _collect(dispatcher, _request(), recorder)
    assert text == demo_server.demo_answer("Hallo")
    assert final.finish_reason == "stop"
    assert final.routing.model_dump() == {
        "requested": "default",
        "provider": "main",
        "model": "small",
        "reason": "default",
        "demo": False,
    }
    assert final.usage.estimated is False and final.usage.completion_tokens == demo_server.count_tokens(text)
    expected = (final.usage.prompt_tokens * 0.15 + final.usage.completion_tokens * 0.60) / 1e6
    assert final.cost == pytest.approx(expected, abs=1e-6) and final.currency == "EUR"
    [outcome] = recorder.outcomes
    assert (outcome.status, outcome.cost, outcome.usage) == ("ok", final.cost, final.usage)
    await dispatcher.aclose()


async def test_usage_is_estimated_when_the_provider_reports_none(urls, recorder):
    dispatcher = _dispatcher(urls, recorder)
    _, final = await _collect(dispatcher, _request("[[demo:nousage]]"), recorder)
    assert final.usage.estimated is True and final.usage.completion_tokens > 0 and final.usage.prompt_tokens > 0
    await dispatcher.aclose()


async def test_5xx_is_retried_with_backoff_then_falls_back(urls, recorder, main_state, backup_state):
    main_state.fail = 500
    dispatcher = _dispatcher(urls, recorder)
    text, final = await _collect(dispatcher, _request(), recorder)
    assert text == demo_server.demo_answer("Hallo")
    assert (final.routing.provider, final.routing.model, final.routing.demo) == ("backup", "spare", True)
    assert final.routing.reason == "default;fallback_after=provider_unavailable"
    assert main_state.requests == 2 and backup_state.requests == 1
    assert len(recorder.sleeps) == 1 and 0 <= recorder.sleeps[0] <= 0.2
    assert final.cost == 0.0  # the spare model is free
    await dispatcher.aclose()


async def test_429_waits_at_least_retry_after(urls, recorder, main_state):
    main_state.fail = 429
    dispatcher = _dispatcher(urls, recorder)
    _, final = await _collect(dispatcher, _request(), recorder)
    assert recorder.sleeps == [1.0]
    assert final.routing.reason.endswith("fallback_after=provider_rate_limited")
    await dispatcher.aclose()


async def test_401_neither_retries_nor_falls_back(urls, recorder, main_state, backup_state):
    main_state.fail = 401
    dispatcher = _dispatcher(urls, recorder)
    with pytest.raises(AuthenticationFailed):
        await _collect(dispatcher, _request(), recorder)
    assert (main_state.requests, backup_state.requests) == (1, 0)
    assert [(o.status, o.error_code) for o in recorder.outcomes] == [("error", "provider_auth_failed")]
    await dispatcher.aclose()


async def test_all_models_failing_raises_the_last_error(urls, recorder, main_state, backup_state):
    main_state.fail = backup_state.fail = 503
    dispatcher = _dispatcher(urls, recorder)
    with pytest.raises(Exception) as info:
        await _collect(dispatcher, _request(), recorder)
    assert info.value.code == "provider_unavailable" and info.value.retry_after == 1.0
    assert recorder.outcomes[0].routing.provider == "backup"
    await dispatcher.aclose()


async def test_first_token_timeout_falls_back(urls, recorder, main_state, backup_state):
    main_state.slow_ms = 2000
    dispatcher = _dispatcher(urls, recorder, timeouts=Timeouts(connect=1, first_token=0.2, total=5))
    _, final = await _collect(dispatcher, _request(), recorder)
    assert final.routing.reason.endswith("fallback_after=provider_timeout")
    main_state.slow_ms = None
    await dispatcher.aclose()


async def test_timeout_without_fallback_is_a_timeout_error(urls, recorder, main_state, backup_state):
    main_state.slow_ms = backup_state.slow_ms = 1000
    dispatcher = _dispatcher(urls, recorder, timeouts=Timeouts(connect=1, first_token=0.1, total=5))
    with pytest.raises(UpstreamTimeout):
        await _collect(dispatcher, _request(), recorder)
    await dispatcher.aclose()


async def test_malformed_stream_after_first_text_is_not_mixed_with_a_fallback(urls, recorder, backup_state):
    dispatcher = _dispatcher(urls, recorder)
    with pytest.raises(MalformedResponse):
        await _collect(dispatcher, _request("[[demo:malformed]]"), recorder)
    assert backup_state.requests == 0
    await dispatcher.aclose()


async def test_breaker_opens_and_skips_the_failing_provider(urls, recorder, main_state):
    main_state.fail = 500
    dispatcher = _dispatcher(urls, recorder)
    await _collect(dispatcher, _request(), recorder)  # 2 failures
    await _collect(dispatcher, _request(), recorder)  # 3rd failure opens the breaker
    assert dispatcher.breakers["main"].state == "open"
    seen = main_state.requests
    _, final = await _collect(dispatcher, _request(), recorder)
    assert main_state.requests == seen == 3
    assert final.routing.reason.endswith("fallback_after=provider_circuit_open")
    await dispatcher.aclose()


async def test_concurrency_limit_holds_and_overflow_falls_back(urls, recorder, main_state, backup_state):
    main_state.slow_ms = 150
    dispatcher = _dispatcher(urls, recorder, max_concurrency=2, max_queue=1, queue_timeout=5)
    results = await asyncio.gather(*[_collect(dispatcher, _request(), recorder) for _ in range(6)])
    providers = sorted(final.routing.provider for _, final in results)
    assert main_state.max_in_flight == 2
    assert providers == ["backup"] * 3 + ["main"] * 3  # 2 running + 1 queued; the rest were refused
    await dispatcher.aclose()


async def test_saturated_without_fallback_is_a_clear_error_with_retry_after(urls, recorder, main_state):
    main_state.slow_ms = 150
    dispatcher = _dispatcher(urls, recorder, max_concurrency=1, max_queue=0, fallbacks={})
    results = await asyncio.gather(
        *[_collect(dispatcher, _request(), recorder) for _ in range(3)], return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 2 and all(isinstance(e, Saturated) and e.retry_after >= 1 for e in errors)
    await dispatcher.aclose()


async def test_abandoned_stream_frees_its_slot(urls, recorder):
    dispatcher = _dispatcher(urls, recorder, max_concurrency=1)
    stream = dispatcher.generate(_request("[[demo:long=200]]"), recorder.finished)
    await anext(stream)
    assert dispatcher.limiters["main"].in_flight == 1
    await stream.aclose()
    assert dispatcher.limiters["main"].in_flight == 0
    assert recorder.outcomes[0].status == "error"
    await dispatcher.aclose()


async def test_tool_calls_pass_through(urls, recorder):
    dispatcher = _dispatcher(urls, recorder)
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    chunks = [c async for c in dispatcher.generate(_request("[[demo:tool]]", tools=tools))]
    calls = [tc for c in chunks for tc in (c.tool_calls or [])]
    assert calls[0]["function"]["name"] == "lookup" and calls[0]["id"] == "call_demo_1"
    assert chunks[-1].finish_reason == "tool_calls"
    await dispatcher.aclose()
