"""OpenAI and Azure OpenAI through the openai SDK, and OpenAI-compatible servers over plain HTTP, against fakes
of the wire format: every non-Azure case runs against both adapters."""

import pytest

from schleuse_common.contracts.providers import ChatMessage, GenerateRequest
from schleuse_providers import demo_server
from schleuse_providers.adapters.factory import adapter_factory
from schleuse_providers.domain.errors import (
    AuthenticationFailed,
    BadRequest,
    MalformedResponse,
    RateLimited,
    Unavailable,
    UpstreamTimeout,
)
from schleuse_providers.domain.model import ModelSpec, ProviderSpec, Timeouts

from .fakes.openai_fake import API_KEY, OpenAIFake

MODEL = ModelSpec("gpt", "p", "gpt-5-mini", 128_000, 0.25, 2.0, "USD")


@pytest.fixture(scope="module")
async def openai_fake():
    app = OpenAIFake()
    async with demo_server.running(app=app) as url:
        yield app, url


@pytest.fixture(scope="module")
async def azure_fake():
    app = OpenAIFake(azure=True)
    async with demo_server.running(app=app, path="") as url:
        yield app, url


@pytest.fixture(params=["openai", "openai_compatible"])
def make_adapter(request):
    """Builds adapters; plain (non-Azure) cases run against the SDK adapter and the plain-HTTP one."""

    def make(url, kind=request.param, key=API_KEY, first_token=5.0, **kw):
        spec = ProviderSpec("p", kind, base_url=url, timeouts=Timeouts(1, first_token, 10), **kw)
        return adapter_factory({"p": {"api_key": key}})(spec)

    return make


def _request(text: str, **kw) -> GenerateRequest:
    return GenerateRequest(messages=[ChatMessage(role="user", content=text)], **kw)


async def _run(adapter, request, model=MODEL):
    try:
        return [c async for c in adapter.stream(model, request)]
    finally:
        await adapter.aclose()


async def test_openai_stream_with_usage_and_parameters(openai_fake, make_adapter):
    app, url = openai_fake
    chunks = await _run(make_adapter(url), _request("Hallo", max_tokens=50, temperature=0.1, stop=["x"]))
    assert "".join(c.delta for c in chunks) == demo_server.demo_answer("Hallo")
    assert chunks[-1].usage.completion_tokens > 0 and not chunks[-1].usage.estimated
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    sent = app.last.json()
    assert sent["model"] == "gpt-5-mini" and sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert (sent["max_tokens"], sent["temperature"], sent["stop"]) == (50, 0.1, ["x"])
    assert app.last.path == "/v1/chat/completions"


async def test_azure_uses_deployment_url_api_version_and_api_key_header(azure_fake, make_adapter):
    app, url = azure_fake
    azure_model = ModelSpec("gpt", "p", "", 128_000)
    adapter = make_adapter(url, kind="azure", deployment="gpt5mini-prod", api_version="2024-10-21")
    chunks = await _run(adapter, _request("Hallo"), azure_model)
    assert "".join(c.delta for c in chunks) == demo_server.demo_answer("Hallo")
    assert app.last.path == "/openai/deployments/gpt5mini-prod/chat/completions"
    assert "api-version=2024-10-21" in app.last.query and app.last.headers["api-key"] == API_KEY


async def test_azure_model_names_its_own_deployment(azure_fake, make_adapter):
    app, url = azure_fake
    await _run(make_adapter(url, kind="azure", api_version="2024-10-21"), _request("x"))
    assert app.last.path == "/openai/deployments/gpt-5-mini/chat/completions"


async def test_tool_calls_pass_through(openai_fake, make_adapter):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    chunks = await _run(make_adapter(openai_fake[1]), _request("[[demo:tool]]", tools=tools, tool_choice="auto"))
    calls = [tc for c in chunks for tc in (c.tool_calls or [])]
    assert calls == [
        {
            "index": 0,
            "id": "call_demo_1",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"demo": true}'},
        }
    ]
    assert openai_fake[0].last.json()["tool_choice"] == "auto"


async def test_401(openai_fake, make_adapter):
    with pytest.raises(AuthenticationFailed):
        await _run(make_adapter(openai_fake[1], key="sk-wrong"), _request("x"))


async def test_azure_401(azure_fake, make_adapter):
    with pytest.raises(AuthenticationFailed):
        await _run(make_adapter(azure_fake[1], kind="azure", key="wrong", api_version="v"), _request("x"))


async def test_429_with_retry_after(openai_fake, make_adapter):
    with pytest.raises(RateLimited) as info:
        await _run(make_adapter(openai_fake[1]), _request("[[demo:fail429]]"))
    assert info.value.retry_after == 1.0


@pytest.mark.parametrize("marker", ["fail500", "fail502", "fail503"])
async def test_5xx(openai_fake, marker, make_adapter):
    with pytest.raises(Unavailable):
        await _run(make_adapter(openai_fake[1]), _request(f"[[demo:{marker}]]"))


async def test_400_is_a_bad_request(openai_fake, make_adapter):
    with pytest.raises(BadRequest):
        await _run(make_adapter(openai_fake[1]), _request("[[demo:fail400]]"))


async def test_read_timeout(openai_fake, make_adapter):
    with pytest.raises(UpstreamTimeout):
        await _run(make_adapter(openai_fake[1], first_token=0.2), _request("[[demo:slow=1000]]"))


async def test_connection_refused_is_unavailable(make_adapter):
    with pytest.raises(Unavailable):
        await _run(make_adapter("http://127.0.0.1:9/v1"), _request("x"))


async def test_malformed_stream(openai_fake, make_adapter):
    with pytest.raises(MalformedResponse):
        await _run(make_adapter(openai_fake[1]), _request("[[demo:malformed]]"))


async def test_compatible_server_without_usage_reports_none(openai_fake, make_adapter):
    chunks = await _run(
        make_adapter(openai_fake[1], kind="openai_compatible", key=API_KEY), _request("[[demo:nousage]]")
    )
    assert all(c.usage is None for c in chunks)


async def test_proxy_is_used_per_provider(openai_fake, make_adapter):
    """The provider's proxy setting routes the call (an absolute-form request reaches the proxy)."""
    app = OpenAIFake()
    async with demo_server.running(app=app, path="") as proxy_url:
        adapter = make_adapter("http://upstream.invalid/v1", proxy=proxy_url)
        await _run(adapter, _request("x"))
    assert app.last.headers["host"] == "upstream.invalid"
