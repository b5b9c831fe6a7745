"""The Anthropic adapter through the official SDK against a fake speaking the real SSE event sequence."""

import pytest

from schleuse_common.contracts.providers import ChatMessage, GenerateRequest
from schleuse_providers import demo_server
from schleuse_providers.adapters.anthropic import AnthropicAdapter
from schleuse_providers.domain.errors import (
    AuthenticationFailed,
    MalformedResponse,
    RateLimited,
    Unavailable,
    UpstreamTimeout,
)
from schleuse_providers.domain.model import ModelSpec, ProviderSpec, Timeouts

from .fakes.anthropic_fake import ANSWER, API_KEY, AnthropicFake

MODEL = ModelSpec("claude", "anthropic", "claude-fake-1", 200_000, 3.0, 15.0, "USD")


@pytest.fixture(scope="module")
async def fake():
    app = AnthropicFake()
    async with demo_server.running(app=app, path="") as url:
        yield app, url


def _adapter(url: str, key: str = API_KEY, first_token: float = 5) -> AnthropicAdapter:
    spec = ProviderSpec("anthropic", "anthropic", base_url=url, timeouts=Timeouts(1, first_token, 10))
    return AnthropicAdapter(spec, key)


def _request(text: str, **kw) -> GenerateRequest:
    messages = [
        ChatMessage(role="system", content="Du bist hilfsbereit."),
        ChatMessage(role="user", content=text),
    ]
    return GenerateRequest(messages=messages, **kw)


async def _run(adapter, request):
    try:
        return [c async for c in adapter.stream(MODEL, request)]
    finally:
        await adapter.aclose()


async def test_stream_maps_text_usage_and_system_prompt(fake):
    app, url = fake
    chunks = await _run(_adapter(url), _request("Hallo", max_tokens=100, stop=["ENDE"], temperature=0.2))
    assert "".join(c.delta for c in chunks) == "".join(ANSWER)
    final = chunks[-1]
    assert final.finish_reason == "stop"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == (25, 12, 37)
    sent = app.last.json()
    assert sent["system"] == "Du bist hilfsbereit."
    assert sent["messages"] == [{"role": "user", "content": "Hallo"}]
    assert (sent["model"], sent["max_tokens"], sent["stop_sequences"], sent["stream"], sent["temperature"]) == (
        "claude-fake-1",
        100,
        ["ENDE"],
        True,
        0.2,
    )
    assert API_KEY in (app.last.headers.get("x-api-key"), app.last.headers.get("authorization", "")[7:])
    assert "anthropic-version" in app.last.headers


async def test_tool_calls_map_both_ways(fake):
    app, url = fake
    tools = [
        {"type": "function", "function": {"name": "weather", "description": "d", "parameters": {"type": "object"}}}
    ]
    history = [
        ChatMessage(role="user", content="Wetter?"),
        ChatMessage(
            role="assistant",
            tool_calls=[
                {"id": "toolu_0", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Köln"}'}}
            ],
        ),
        ChatMessage(role="tool", tool_call_id="toolu_0", content="12 Grad"),
        ChatMessage(role="user", content="Und Berlin? [[fake:tool]]"),
    ]
    request = GenerateRequest(messages=history, tools=tools, tool_choice="required")
    chunks = await _run(_adapter(url), request)
    calls = [tc for c in chunks for tc in (c.tool_calls or [])]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_fake1",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city": "Berlin"}'
    assert chunks[-1].finish_reason == "tool_calls"
    sent = app.last.json()
    assert sent["tools"] == [{"name": "weather", "description": "d", "input_schema": {"type": "object"}}]
    assert sent["tool_choice"] == {"type": "any"}
    assert sent["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "toolu_0",
        "name": "weather",
        "input": {"city": "Köln"},
    }
    # the tool result and the next user text merge into one user turn (Anthropic wants alternation)
    assert sent["messages"][2]["content"][0]["type"] == "tool_result"
    assert sent["messages"][2]["content"][1]["text"].startswith("Und Berlin?")


async def test_401(fake):
    with pytest.raises(AuthenticationFailed):
        await _run(_adapter(fake[1], key="sk-ant-wrong"), _request("x"))


async def test_429_carries_retry_after(fake):
    with pytest.raises(RateLimited) as info:
        await _run(_adapter(fake[1]), _request("[[fake:429]]"))
    assert info.value.retry_after == 7


@pytest.mark.parametrize("marker", ["500", "529", "midstream_error"])
async def test_server_errors_and_overload(fake, marker):
    with pytest.raises(Unavailable):
        await _run(_adapter(fake[1]), _request(f"[[fake:{marker}]]"))


async def test_malformed_stream(fake):
    with pytest.raises(MalformedResponse):
        await _run(_adapter(fake[1]), _request("[[fake:malformed]]"))


async def test_read_timeout(fake):
    fake[0].state.slow_seconds = 1.0
    with pytest.raises(UpstreamTimeout):
        await _run(_adapter(fake[1], first_token=0.2), _request("[[fake:slow]]"))
