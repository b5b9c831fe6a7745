"""The demo provider, exercised through the official OpenAI SDK."""

import httpx
import openai
import pytest

from schleuse_providers import demo_server


@pytest.fixture
async def demo_url():
    async with demo_server.running() as url:
        yield url


def _client(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url, api_key="demo", max_retries=0)


async def test_answer_is_deterministic_and_mentions_placeholders(demo_url):
    client = _client(demo_url)
    messages = [{"role": "user", "content": "Schreibe an [PERSON_1] in [ORT_2]."}]
    first = await client.chat.completions.create(model="schleuse-demo", messages=messages)
    second = await client.chat.completions.create(model="schleuse-demo", messages=messages)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert "[PERSON_1], [ORT_2]" in first.choices[0].message.content
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens > 0


async def test_stream_reassembles_to_the_same_answer_with_usage_last(demo_url):
    client = _client(demo_url)
    messages = [{"role": "user", "content": "Hallo"}]
    whole = await client.chat.completions.create(model="m", messages=messages)
    stream = await client.chat.completions.create(
        model="m", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


async def test_stream_without_include_usage_has_no_usage(demo_url):
    stream = await _client(demo_url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Hallo"}], stream=True
    )
    assert all(c.usage is None for c in [c async for c in stream])


async def test_echo_returns_exactly_what_left_the_house(demo_url):
    prompt = "Bitte [[demo:echo]] an [PERSON_1] weiterleiten"
    reply = await _client(demo_url).chat.completions.create(
        model="m", messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": prompt}]
    )
    assert reply.choices[0].message.content == prompt


@pytest.mark.parametrize(
    ("marker", "error"),
    [
        ("fail500", openai.InternalServerError),
        ("fail401", openai.AuthenticationError),
        ("fail429", openai.RateLimitError),
    ],
)
async def test_failure_markers(demo_url, marker, error):
    with pytest.raises(error) as info:
        await _client(demo_url).chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"x [[demo:{marker}]]"}]
        )
    if marker == "fail429":
        assert info.value.response.headers["retry-after"] == "1"


async def test_run_time_fail_mode_and_stats(demo_url):
    root = demo_url.removesuffix("/v1")
    async with httpx.AsyncClient() as http:
        await http.post(f"{root}/_demo/mode", json={"fail": 503})
        with pytest.raises(openai.APIStatusError) as info:
            await _client(demo_url).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == 503
        await http.post(f"{root}/_demo/mode", json={"fail": None})
        reply = await _client(demo_url).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert reply.choices[0].message.content
        stats = (await http.get(f"{root}/_demo/stats")).json()
    assert stats["requests"] == 2


async def test_tool_marker_returns_a_tool_call(demo_url):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    stream = await _client(demo_url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "[[demo:tool]]"}], tools=tools, stream=True
    )
    chunks = [c async for c in stream]
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "lookup"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_malformed_stream_breaks_the_sdk(demo_url):
    stream = await _client(demo_url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "[[demo:malformed]]"}], stream=True
    )
    with pytest.raises(Exception):  # noqa: B017 - the SDK raises a JSON decode error
        _ = [c async for c in stream]


async def test_long_marker_sets_answer_length(demo_url):
    reply = await _client(demo_url).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "[[demo:long=50]]"}]
    )
    assert len(reply.choices[0].message.content.split()) == 50
