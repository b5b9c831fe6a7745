"""Anthropic Messages API via the anthropic SDK: system prompt mapping, tools, streamed events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import pydantic

from schleuse_common.contracts.providers import ChatMessage, GenerateChunk, GenerateRequest, Usage
from schleuse_providers.adapters.base import error_for_status, http_client, parse_retry_after
from schleuse_providers.domain.errors import MalformedResponse, Unavailable, UpstreamTimeout
from schleuse_providers.domain.model import ModelSpec, ProviderSpec

DEFAULT_MAX_TOKENS = 4096
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


class AnthropicAdapter:
    """One shared AsyncAnthropic client per provider."""

    def __init__(self, spec: ProviderSpec, api_key: str | None) -> None:
        self.spec = spec
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key or "missing",
            base_url=spec.base_url or None,
            http_client=http_client(spec),
            max_retries=0,
        )

    async def aclose(self) -> None:
        await self.client.close()

    async def stream(self, model: ModelSpec, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
        params = request_params(model, request)
        name = self.spec.name
        state = _StreamState()
        try:
            stream = await self.client.messages.create(**params, stream=True)
            async for event in stream:
                chunk = state.on_event(event)
                if chunk is not None:
                    yield chunk
        except anthropic.APIStatusError as exc:
            if exc.status_code < 400:  # an `error` event inside a 200 stream, e.g. overloaded_error
                raise Unavailable(f"provider {name} reported an error mid-stream", provider=name) from None
            retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
            raise error_for_status(
                exc.status_code, f"provider {name} answered {exc.status_code}", name, retry_after
            ) from None
        except (anthropic.APITimeoutError, httpx2.TimeoutException):
            raise UpstreamTimeout(f"timeout talking to provider {name}", provider=name) from None
        except (anthropic.APIConnectionError, httpx2.TransportError):
            raise Unavailable(f"provider {name} unreachable", provider=name) from None
        except (
            json.JSONDecodeError,
            pydantic.ValidationError,
            anthropic.APIResponseValidationError,
            KeyError,
        ):
            raise MalformedResponse(f"malformed stream from provider {name}", provider=name) from None
        if not state.stopped:
            raise MalformedResponse(f"stream from provider {name} ended early", provider=name)
        yield GenerateChunk(finish_reason=state.finish_reason, usage=state.usage())


class _StreamState:
    """Turns Anthropic's event sequence into provider-neutral chunks (tool calls in OpenAI's delta shape)."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.finish_reason = "stop"
        self.stopped = False
        self.tool_index: dict[int, int] = {}

    def usage(self) -> Usage:
        total = self.input_tokens + self.output_tokens
        return Usage(prompt_tokens=self.input_tokens, completion_tokens=self.output_tokens, total_tokens=total)

    def on_event(self, event: Any) -> GenerateChunk | None:
        kind = event.type
        if kind == "message_start":
            usage = event.message.usage
            self.input_tokens = _input_tokens(usage)
            self.output_tokens = usage.output_tokens or 0
        elif kind == "content_block_start" and event.content_block.type == "tool_use":
            block = event.content_block
            index = self.tool_index[event.index] = len(self.tool_index)
            call = {
                "index": index,
                "id": block.id,
                "type": "function",
                "function": {"name": block.name, "arguments": ""},
            }
            return GenerateChunk(tool_calls=[call])
        elif kind == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                return GenerateChunk(delta=delta.text) if delta.text else None
            if delta.type == "input_json_delta" and event.index in self.tool_index:
                call = {"index": self.tool_index[event.index], "function": {"arguments": delta.partial_json}}
                return GenerateChunk(tool_calls=[call])
        elif kind == "message_delta":
            self.finish_reason = STOP_REASONS.get(event.delta.stop_reason or "", "stop")
            if event.usage is not None:
                self.output_tokens = event.usage.output_tokens or self.output_tokens
                self.input_tokens = _input_tokens(event.usage) or self.input_tokens
        elif kind == "message_stop":
            self.stopped = True
        return None


def _input_tokens(usage: Any) -> int:
    """Input tokens including cache reads and writes, which are billed as input too."""
    total = getattr(usage, "input_tokens", None) or 0
    for name in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        total += getattr(usage, name, None) or 0
    return int(total)


def request_params(model: ModelSpec, request: GenerateRequest) -> dict[str, Any]:
    """OpenAI-shaped conversation -> Messages API: system prompt apart, tool calls as content blocks."""
    system = "\n\n".join(m.content or "" for m in request.messages if m.role == "system")
    params: dict[str, Any] = {
        "model": model.upstream_model,
        "messages": _messages([m for m in request.messages if m.role != "system"]),
        "max_tokens": request.max_tokens or model.max_output_tokens or DEFAULT_MAX_TOKENS,
    }
    if system:
        params["system"] = system
    sampling = {"temperature": request.temperature, "top_p": request.top_p}
    if any(v is not None for v in sampling.values()):
        # newer SDKs dropped these keywords; older models still honour them in the body
        params["extra_body"] = {k: v for k, v in sampling.items() if v is not None}
    if request.stop:
        params["stop_sequences"] = request.stop
    if request.tools:
        params["tools"] = [_tool(t) for t in request.tools]
        choice = _tool_choice(request.tool_choice)
        if choice is not None:
            params["tool_choice"] = choice
    return params


def _messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        entry: dict[str, Any]
        if message.role == "tool":
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.content or "",
            }
            entry = {"role": "user", "content": [block]}
        elif message.role == "assistant" and message.tool_calls:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
            for call in message.tool_calls:
                function = call.get("function") or {}
                arguments = function.get("arguments") or "{}"
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": function.get("name", ""),
                        "input": json.loads(arguments) if isinstance(arguments, str) else arguments,
                    }
                )
            entry = {"role": "assistant", "content": blocks}
        else:
            entry = {"role": message.role, "content": message.content or ""}
        if out and out[-1]["role"] == entry["role"]:  # Anthropic wants alternating turns
            out[-1]["content"] = _as_blocks(out[-1]["content"]) + _as_blocks(entry["content"])
        else:
            out.append(entry)
    return out


def _as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or tool
    spec = {"name": function["name"], "input_schema": function.get("parameters") or {"type": "object"}}
    if function.get("description"):
        spec["description"] = function["description"]
    return spec


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None or choice == "auto":
        return {"type": "auto"} if choice else None
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and choice.get("function"):
        return {"type": "tool", "name": choice["function"]["name"]}
    return None
