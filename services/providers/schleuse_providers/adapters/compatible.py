"""OpenAI-compatible servers (Ollama, vLLM, LM Studio, the demo provider) over plain HTTP: the same wire format
as the openai SDK speaks, without its per-chunk model building, because local servers sit on the hot path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import orjson

from schleuse_common.contracts.providers import GenerateChunk, GenerateRequest, Usage
from schleuse_providers.adapters.base import error_for_status, http_client, parse_retry_after
from schleuse_providers.adapters.openai import request_params
from schleuse_providers.domain.errors import MalformedResponse, Unavailable, UpstreamTimeout
from schleuse_providers.domain.model import ModelSpec, ProviderSpec


class CompatibleAdapter:
    """Streams `POST {base_url}/chat/completions` as server-sent events, with usage when the server gives it."""

    def __init__(self, spec: ProviderSpec, api_key: str | None) -> None:
        self.spec = spec
        self._http = http_client(spec)
        self._url = (spec.base_url or "").rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key or 'not-needed'}", "Accept": "text/event-stream"}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def stream(self, model: ModelSpec, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
        params = request_params(request)
        params.update(model=model.upstream_model, stream=True, stream_options={"include_usage": True})
        name = self.spec.name
        finished = False
        try:
            async with self._http.stream(
                "POST", self._url, content=orjson.dumps(params), headers=self._headers
            ) as response:
                if response.status_code >= 400:
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                    status = response.status_code
                    raise error_for_status(status, f"provider {name} answered {status}", name, retry_after)
                async for data in _sse_data(response):  # read to the end: the connection stays reusable
                    if data == b"[DONE]":
                        continue
                    chunk = _chunk(orjson.loads(data))
                    if chunk is not None:
                        finished = finished or chunk.finish_reason is not None
                        yield chunk
        except httpx2.TimeoutException:
            raise UpstreamTimeout(f"timeout talking to provider {name}", provider=name) from None
        except httpx2.TransportError:
            raise Unavailable(f"provider {name} unreachable", provider=name) from None
        except (orjson.JSONDecodeError, KeyError, TypeError, IndexError, AttributeError):
            raise MalformedResponse(f"malformed stream from provider {name}", provider=name) from None
        if not finished:
            raise MalformedResponse(f"stream from provider {name} ended early", provider=name)


async def _sse_data(response: httpx2.Response) -> AsyncIterator[bytes]:
    """The `data:` payloads of a server-sent event stream, split on bytes (no text decoding per line)."""
    pending = b""
    async for raw in response.aiter_bytes():  # decoded: an upstream may compress its stream
        pending += raw
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip()
    if pending.startswith(b"data:"):
        yield pending[5:].strip()


def _chunk(event: dict[str, Any]) -> GenerateChunk | None:
    """One SSE event as a chunk; None when it carries nothing (e.g. the role-only first delta)."""
    usage = _usage(event.get("usage"))
    choices = event["choices"]
    if not choices:
        return GenerateChunk(usage=usage) if usage is not None else None
    choice = choices[0]
    delta = choice.get("delta") or {}
    content = delta.get("content") or ""
    calls = delta.get("tool_calls") or None
    finish = choice.get("finish_reason")
    if not (content or calls or finish or usage):
        return None
    return GenerateChunk(delta=content, tool_calls=calls, finish_reason=finish, usage=usage)


def _usage(usage: dict[str, Any] | None) -> Usage | None:
    if not usage:
        return None
    return Usage(
        prompt_tokens=usage.get("prompt_tokens") or 0,
        completion_tokens=usage.get("completion_tokens") or 0,
        total_tokens=usage.get("total_tokens") or 0,
    )
