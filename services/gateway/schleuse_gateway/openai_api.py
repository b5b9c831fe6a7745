"""The OpenAI-compatible `/v1` surface: chat completions (plain and SSE) and models."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import structlog
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response, StreamingResponse

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError
from schleuse_common.contracts.chat import CHAT_TURN, TurnChunk, TurnRequest
from schleuse_common.contracts.providers import (
    PROVIDERS_MODELS,
    ChatMessage,
    ModelsRequest,
    ModelsResult,
    coalesce_chunks,
    merge_tool_calls,
)
from schleuse_common.ids import new_id
from schleuse_gateway.auth import Authenticator, AuthError
from schleuse_gateway.errors import FINAL_REFUSALS, openai_error, status_of

log = structlog.get_logger("schleuse.gateway.v1")


class StreamOptions(BaseModel):
    include_usage: bool = False


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def text(self) -> str | None:
        """Content as text; multi-part content keeps only its text parts."""
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's request Schleuse honours; unknown fields are ignored like OpenAI does."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1)
    messages: list[OpenAIMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None

    def to_turn(self) -> TurnRequest:
        """The internal turn request; `assistant:<id>` picks a department assistant."""
        assistant_id = self.model.removeprefix("assistant:") if self.model.startswith("assistant:") else None
        return TurnRequest(
            messages=[
                ChatMessage(
                    role="system" if m.role == "developer" else m.role,
                    content=m.text(),
                    name=m.name,
                    tool_calls=m.tool_calls,
                    tool_call_id=m.tool_call_id,
                )
                for m in self.messages
            ],
            model="default" if assistant_id else self.model,
            assistant_id=assistant_id,
            stream=self.stream,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_completion_tokens or self.max_tokens,
            stop=[self.stop] if isinstance(self.stop, str) else self.stop,
        )


def _validation_message(e: ValidationError) -> tuple[str, str | None]:
    first = e.errors()[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    return f"Invalid request: {param}: {first['msg']}", param


@dataclass
class OpenAIEndpoints:
    """The `/v1` handlers, bound to the bus and the authenticator; served by FastAPI and by the fast path."""

    bus: Bus
    auth: Authenticator
    turn_timeout: float

    async def authenticate(self, request: Request) -> Actor | Response:
        """The caller's actor, or the OpenAI-shaped error to answer with."""
        try:
            return (await self.auth.authenticate(request)).actor  # scopes, allowed assistants, rate limit, CSRF
        except AuthError as e:
            code = ("invalid_api_key" if "invalid" in str(e) else "missing_api_key") if e.status == 401 else e.code
            return openai_error(e.status, e.message, code=code, retry_after=e.retry_after)

    async def chat_completions(self, request: Request) -> Response:
        """Create a chat completion (OpenAI-compatible), plain or as SSE."""
        actor = await self.authenticate(request)
        if isinstance(actor, Response):
            return actor
        raw = await request.body()
        try:
            body = ChatCompletionRequest.model_validate_json(raw)
        except ValidationError as e:
            message, param = _validation_message(e)
            return openai_error(400, message, code="invalid_request", param=param)
        turn = body.to_turn()
        chunks = self.bus.request_stream(
            CHAT_TURN, turn, TurnChunk, actor=actor, timeout=self.turn_timeout, coalesce=coalesce_chunks
        )
        completion_id = f"chatcmpl-{new_id().replace('-', '')}"
        created = int(time.time())
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            first = TurnChunk(finish_reason="stop")
        except BusError as e:
            return _bus_error(e)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            sse = _sse(first, chunks, completion_id, created, body.model, include_usage)
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(sse, media_type="text/event-stream", headers=headers)
        return await _complete(first, chunks, completion_id, created, body.model)

    async def models(self, request: Request) -> Response:
        """List the models the caller may use."""
        actor = await self.authenticate(request)
        if isinstance(actor, Response):
            return actor
        try:
            result = await self.bus.request(
                PROVIDERS_MODELS, ModelsRequest(department=actor.department), ModelsResult, actor=actor
            )
        except BusError as e:
            return _bus_error(e)
        data = [
            {"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by, "schleuse_demo": m.demo}
            for m in result.models
        ]
        return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")

    def router(self) -> APIRouter:
        """The routes as FastAPI sees them (OpenAPI documentation, every path but the fast ones)."""
        router = APIRouter(prefix="/v1", tags=["openai"])
        router.add_api_route(
            "/chat/completions",
            self.chat_completions,
            methods=["POST"],
            summary="Create a chat completion (OpenAI-compatible)",
        )
        router.add_api_route("/models", self.models, methods=["GET"], summary="List the models the caller may use")
        return router

    def fast_paths(self) -> dict[tuple[str, str], Callable[[Request], Awaitable[Response]]]:
        """The hot routes, served without FastAPI's routing and dependency machinery."""
        return {("POST", "/v1/chat/completions"): self.chat_completions, ("GET", "/v1/models"): self.models}


def _bus_error(e: BusError) -> Response:
    should_retry = False if e.code in FINAL_REFUSALS else None
    return openai_error(status_of(e), e.message, code=e.code, retry_after=e.retry_after, should_retry=should_retry)


async def _complete(
    first: TurnChunk, rest: AsyncIterator[TurnChunk], completion_id: str, created: int, model: str
) -> Response:
    parts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    last = first
    try:
        chunk: TurnChunk | None = first
        while chunk is not None:
            parts.append(chunk.delta)
            if chunk.tool_calls:
                tool_calls.extend(chunk.tool_calls)
            last = chunk
            chunk = await anext(rest, None)
    except BusError as e:
        return _bus_error(e)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(parts)}
    if tool_calls:
        message["tool_calls"] = merge_tool_calls(tool_calls)
    usage = last.usage
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": last.routing.model if last.routing else model,
        "choices": [{"index": 0, "message": message, "finish_reason": last.finish_reason or "stop"}],
        "usage": {
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "total_tokens": usage.total_tokens if usage else 0,
        },
    }
    headers = _routing_headers(last)
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


def _routing_headers(chunk: TurnChunk) -> dict[str, str]:
    if chunk.routing is None:
        return {}
    headers = {"X-Schleuse-Provider": chunk.routing.provider, "X-Schleuse-Model": chunk.routing.model}
    if chunk.routing.demo:
        headers["X-Schleuse-Demo-Provider"] = "true: answers come from the bundled demo provider, not an LLM"
    return headers


async def _sse(
    first: TurnChunk,
    rest: AsyncIterator[TurnChunk],
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
    role_sent = False
    chunk: TurnChunk | None = first
    try:
        while chunk is not None:
            delta: dict[str, Any] = {}
            if not role_sent:
                delta["role"] = "assistant"
                role_sent = True
            if chunk.delta:
                delta["content"] = chunk.delta
            if chunk.tool_calls:
                delta["tool_calls"] = chunk.tool_calls
            if chunk.routing:
                head["model"] = chunk.routing.model
            if delta or chunk.finish_reason:
                choice = {"index": 0, "delta": delta, "finish_reason": chunk.finish_reason}
                yield b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"
            if chunk.finish_reason and include_usage and chunk.usage:
                usage = {
                    "prompt_tokens": chunk.usage.prompt_tokens,
                    "completion_tokens": chunk.usage.completion_tokens,
                    "total_tokens": chunk.usage.total_tokens,
                }
                yield b"data: " + orjson.dumps({**head, "choices": [], "usage": usage}) + b"\n\n"
            chunk = await anext(rest, None)
    except BusError as e:
        # Headers are gone already: report in-band the way OpenAI does, then end the stream.
        err = {"error": {"message": e.message, "type": "api_error", "code": e.code}}
        yield b"data: " + orjson.dumps(err) + b"\n\n"
        log.warning("gateway.stream_failed", code=e.code)
    yield b"data: [DONE]\n\n"
