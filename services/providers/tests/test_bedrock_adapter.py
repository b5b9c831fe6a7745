"""The Bedrock adapter through boto3 against a fake bedrock-runtime (Converse JSON, ConverseStream event stream)."""

import pytest

from schleuse_common.contracts.providers import ChatMessage, GenerateRequest
from schleuse_providers import demo_server
from schleuse_providers.adapters.bedrock import BedrockAdapter
from schleuse_providers.domain.errors import (
    AuthenticationFailed,
    MalformedResponse,
    RateLimited,
    Unavailable,
    UpstreamTimeout,
)
from schleuse_providers.domain.model import ModelSpec, ProviderSpec, Timeouts

from .fakes.bedrock_fake import ACCESS_KEY, ANSWER, BedrockFake

MODEL = ModelSpec("claude-bedrock", "bedrock", "eu.anthropic.claude-fake-v1:0", 200_000, 3.0, 15.0, "USD")
SECRET = {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": "fake-secret-key-0123456789"}


@pytest.fixture(scope="module")
async def fake():
    app = BedrockFake()
    async with demo_server.running(app=app, path="") as url:
        yield app, url


def _adapter(url, secret=SECRET, first_token=5.0) -> BedrockAdapter:
    spec = ProviderSpec(
        "bedrock", "bedrock", base_url=url, region="eu-central-1", timeouts=Timeouts(1, first_token, 10)
    )
    return BedrockAdapter(spec, secret)


def _request(text: str, **kw) -> GenerateRequest:
    messages = [ChatMessage(role="system", content="Sei knapp."), ChatMessage(role="user", content=text)]
    return GenerateRequest(messages=messages, **kw)


async def _run(adapter, request):
    try:
        return [c async for c in adapter.stream(MODEL, request)]
    finally:
        await adapter.aclose()


async def test_converse_stream_text_usage_and_request_mapping(fake):
    app, url = fake
    chunks = await _run(_adapter(url), _request("Hallo", max_tokens=64, temperature=0.3, stop=["ENDE"]))
    assert "".join(c.delta for c in chunks) == "".join(ANSWER)
    final = chunks[-1]
    assert final.finish_reason == "stop"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == (30, 9, 39)
    assert app.last.path.endswith("/converse-stream") and "eu.anthropic.claude-fake-v1" in app.last.path
    sent = app.last.json()
    assert sent["system"] == [{"text": "Sei knapp."}]
    assert sent["messages"] == [{"role": "user", "content": [{"text": "Hallo"}]}]
    assert sent["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.3, "stopSequences": ["ENDE"]}
    assert "eu-central-1/bedrock" in app.last.headers["authorization"]


async def test_stream_tool_calls(fake):
    app, url = fake
    tools = [
        {"type": "function", "function": {"name": "weather", "description": "d", "parameters": {"type": "object"}}}
    ]
    history = [
        ChatMessage(role="user", content="Wetter?"),
        ChatMessage(
            role="assistant",
            tool_calls=[
                {"id": "t0", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Köln"}'}}
            ],
        ),
        ChatMessage(role="tool", tool_call_id="t0", content="12 Grad"),
        ChatMessage(role="user", content="Und Berlin? [[fake:tool]]"),
    ]
    chunks = await _run(_adapter(url), GenerateRequest(messages=history, tools=tools, tool_choice="required"))
    calls = [tc for c in chunks for tc in (c.tool_calls or [])]
    assert calls[0] == {
        "index": 0,
        "id": "tooluse_fake1",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city": "Berlin"}'
    assert chunks[-1].finish_reason == "tool_calls"
    sent = app.last.json()
    assert sent["toolConfig"]["toolChoice"] == {"any": {}}
    assert sent["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": {"type": "object"}}
    assert sent["messages"][1]["content"] == [
        {"toolUse": {"toolUseId": "t0", "name": "weather", "input": {"city": "Köln"}}}
    ]
    assert [list(b) for b in sent["messages"][2]["content"]] == [["toolResult"], ["text"]]


async def test_converse_non_streaming(fake):
    adapter = _adapter(fake[1])
    try:
        chunks = await adapter.complete(MODEL, _request("Hallo"))
    finally:
        await adapter.aclose()
    assert chunks[0].delta == "".join(ANSWER)
    assert chunks[-1].usage.total_tokens == 39 and chunks[-1].finish_reason == "stop"
    assert fake[0].last.path.endswith("/converse")


async def test_bad_credentials(fake):
    with pytest.raises(AuthenticationFailed):
        await _run(
            _adapter(fake[1], secret={"aws_access_key_id": "AKIAWRONG", "aws_secret_access_key": "x"}), _request("x")
        )


async def test_throttling_with_retry_after(fake):
    with pytest.raises(RateLimited) as info:
        await _run(_adapter(fake[1]), _request("[[fake:429]]"))
    assert info.value.retry_after == 3.0


@pytest.mark.parametrize("marker", ["500", "503", "midstream_error"])
async def test_server_errors(fake, marker):
    with pytest.raises(Unavailable):
        await _run(_adapter(fake[1]), _request(f"[[fake:{marker}]]"))


async def test_throttling_inside_the_stream(fake):
    with pytest.raises(RateLimited):
        await _run(_adapter(fake[1]), _request("[[fake:midstream_throttle]]"))


async def test_corrupt_frame_is_malformed(fake):
    with pytest.raises(MalformedResponse):
        await _run(_adapter(fake[1]), _request("[[fake:malformed]]"))


async def test_read_timeout(fake):
    fake[0].state.slow_seconds = 1.5
    with pytest.raises(UpstreamTimeout):
        await _run(_adapter(fake[1], first_token=0.3), _request("[[fake:slow]]"))
