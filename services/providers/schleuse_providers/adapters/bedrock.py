"""AWS Bedrock via boto3 bedrock-runtime Converse / ConverseStream, run in a worker thread."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any

import boto3
import botocore.config
import botocore.eventstream
import botocore.exceptions

from schleuse_common.contracts.providers import ChatMessage, GenerateChunk, GenerateRequest, Usage
from schleuse_providers.domain.errors import (
    AuthenticationFailed,
    BadRequest,
    MalformedResponse,
    ProviderError,
    RateLimited,
    Unavailable,
    UpstreamTimeout,
)
from schleuse_providers.domain.model import ModelSpec, ProviderSpec

STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}
_AUTH_CODES = {
    "accessdeniedexception",
    "unrecognizedclientexception",
    "expiredtokenexception",
    "invalidsignatureexception",
}
_THROTTLE_CODES = {"throttlingexception", "toomanyrequestsexception"}
_UNAVAILABLE_CODES = {
    "internalserverexception",
    "serviceunavailableexception",
    "modelstreamerrorexception",
    "modelnotreadyexception",
    "modeltimeoutexception",
}
_END = object()


class BedrockAdapter:
    """One shared boto3 client per provider (thread-safe); streaming events are pumped from a thread."""

    def __init__(self, spec: ProviderSpec, secret: Mapping[str, str]) -> None:
        self.spec = spec
        t = spec.timeouts
        proxies = {"http": spec.proxy, "https": spec.proxy} if spec.proxy else None
        config = botocore.config.Config(
            connect_timeout=t.connect,
            read_timeout=t.first_token,
            retries={"total_max_attempts": 1},  # retries and fallbacks are ours
            proxies=proxies,
            max_pool_connections=max(10, spec.max_concurrency * 2),
        )
        session = boto3.session.Session(
            aws_access_key_id=secret.get("aws_access_key_id") or None,
            aws_secret_access_key=secret.get("aws_secret_access_key") or None,
            aws_session_token=secret.get("aws_session_token") or None,
            region_name=spec.region or "eu-central-1",
        )  # without keys in config, the standard AWS chain (env, profile, instance role) applies
        self.client: Any = session.client("bedrock-runtime", endpoint_url=spec.base_url or None, config=config)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.client.close)

    async def complete(self, model: ModelSpec, request: GenerateRequest) -> list[GenerateChunk]:
        """Non-streaming Converse (for callers that want one answer); same mapping as the stream."""
        params = request_params(model, request)
        try:
            response = await asyncio.to_thread(self.client.converse, **params)
        except Exception as exc:  # mapped to a domain error right here
            raise _map_error(exc, self.spec.name) from None
        chunks: list[GenerateChunk] = []
        for index, block in enumerate(response["output"]["message"]["content"]):
            if "text" in block:
                chunks.append(GenerateChunk(delta=block["text"]))
            elif "toolUse" in block:
                use = block["toolUse"]
                function = {"name": use["name"], "arguments": json.dumps(use.get("input", {}))}
                call = {"index": index, "id": use["toolUseId"], "type": "function", "function": function}
                chunks.append(GenerateChunk(tool_calls=[call]))
        finish = STOP_REASONS.get(response.get("stopReason", ""), "stop")
        chunks.append(GenerateChunk(finish_reason=finish, usage=_usage(response.get("usage"))))
        return chunks

    async def stream(self, model: ModelSpec, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
        params = request_params(model, request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        holder: dict[str, Any] = {}
        stop = threading.Event()

        def pump() -> None:
            try:
                response = self.client.converse_stream(**params)
                holder["stream"] = response["stream"]
                for event in response["stream"]:
                    if stop.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, event)
                loop.call_soon_threadsafe(queue.put_nowait, _END)
            except Exception as exc:  # handed to the event loop and mapped there
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        worker = loop.run_in_executor(None, pump)
        state = _StreamState()
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, Exception):
                    raise _map_error(item, self.spec.name)
                chunk = state.on_event(item)
                if chunk is not None:
                    yield chunk
        finally:
            stop.set()
            event_stream = holder.get("stream")
            if event_stream is not None:
                event_stream.close()
            if not worker.done():
                worker.cancel()
        if not state.stopped:
            raise MalformedResponse(f"stream from provider {self.spec.name} ended early", provider=self.spec.name)
        yield GenerateChunk(finish_reason=state.finish_reason, usage=state.usage)


class _StreamState:
    """ConverseStream events -> provider-neutral chunks (tool calls in OpenAI's delta shape)."""

    def __init__(self) -> None:
        self.finish_reason = "stop"
        self.stopped = False
        self.usage: Usage | None = None
        self.tool_index: dict[int, int] = {}

    def on_event(self, event: Mapping[str, Any]) -> GenerateChunk | None:
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = start.get("start", {}).get("toolUse")
            if use:
                index = self.tool_index[start["contentBlockIndex"]] = len(self.tool_index)
                function = {"name": use["name"], "arguments": ""}
                return GenerateChunk(
                    tool_calls=[{"index": index, "id": use["toolUseId"], "type": "function", "function": function}]
                )
        elif "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            delta = body.get("delta", {})
            if delta.get("text"):
                return GenerateChunk(delta=delta["text"])
            if "toolUse" in delta and body.get("contentBlockIndex") in self.tool_index:
                index = self.tool_index[body["contentBlockIndex"]]
                return GenerateChunk(
                    tool_calls=[{"index": index, "function": {"arguments": delta["toolUse"]["input"]}}]
                )
        elif "messageStop" in event:
            self.finish_reason = STOP_REASONS.get(event["messageStop"].get("stopReason", ""), "stop")
            self.stopped = True
        elif "metadata" in event:
            self.usage = _usage(event["metadata"].get("usage"))
        return None


def _usage(usage: Mapping[str, Any] | None) -> Usage | None:
    if not usage:
        return None
    prompt = int(usage.get("inputTokens", 0)) + int(usage.get("cacheReadInputTokens", 0))
    completion = int(usage.get("outputTokens", 0))
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def _map_error(exc: Exception, provider: str) -> ProviderError:
    if isinstance(exc, botocore.exceptions.ReadTimeoutError | botocore.exceptions.ConnectTimeoutError):
        return UpstreamTimeout(f"timeout talking to provider {provider}", provider=provider)
    if isinstance(exc, botocore.exceptions.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "")).lower()
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"provider {provider} answered {code or status}"
        retry = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("retry-after")
        retry_after = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
        if code in _AUTH_CODES or status in (401, 403):
            return AuthenticationFailed(message, provider=provider)
        if code in _THROTTLE_CODES or status == 429:
            return RateLimited(message, provider=provider, retry_after=retry_after)
        if code in _UNAVAILABLE_CODES or status >= 500:
            return Unavailable(message, provider=provider, retry_after=retry_after)
        return BadRequest(message, provider=provider)
    if isinstance(exc, botocore.eventstream.ParserError | ValueError | KeyError):
        return MalformedResponse(f"malformed stream from provider {provider}", provider=provider)
    if isinstance(exc, botocore.exceptions.BotoCoreError):  # connection refused, closed, proxy errors
        return Unavailable(f"provider {provider} unreachable", provider=provider)
    return Unavailable(f"provider {provider} failed ({type(exc).__name__})", provider=provider)


def request_params(model: ModelSpec, request: GenerateRequest) -> dict[str, Any]:
    """OpenAI-shaped conversation -> Converse: system blocks apart, tool use/results as content blocks."""
    params: dict[str, Any] = {"modelId": model.upstream_model, "messages": _messages(request.messages)}
    system = [{"text": m.content} for m in request.messages if m.role == "system" and m.content]
    if system:
        params["system"] = system
    inference: dict[str, Any] = {}
    for source, target in (("max_tokens", "maxTokens"), ("temperature", "temperature"), ("top_p", "topP")):
        value = getattr(request, source)
        if value is not None:
            inference[target] = value
    if request.stop:
        inference["stopSequences"] = request.stop
    if inference:
        params["inferenceConfig"] = inference
    if request.tools:
        params["toolConfig"] = _tool_config(request.tools, request.tool_choice)
    return params


def _messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        content: list[dict[str, Any]] = []
        if message.role == "tool":
            result = {"toolUseId": message.tool_call_id or "", "content": [{"text": message.content or ""}]}
            content.append({"toolResult": result})
        elif message.content:
            content.append({"text": message.content})
        for call in message.tool_calls or []:
            function = call.get("function") or {}
            arguments = function.get("arguments") or "{}"
            tool_input = json.loads(arguments) if isinstance(arguments, str) else arguments
            content.append(
                {"toolUse": {"toolUseId": call.get("id", ""), "name": function.get("name", ""), "input": tool_input}}
            )
        if out and out[-1]["role"] == role:  # Converse wants alternating turns
            out[-1]["content"].extend(content)
        else:
            out.append({"role": role, "content": content})
    return out


def _tool_config(tools: list[dict[str, Any]], choice: Any) -> dict[str, Any]:
    specs = []
    for tool in tools:
        function = tool.get("function") or tool
        spec: dict[str, Any] = {
            "name": function["name"],
            "inputSchema": {"json": function.get("parameters") or {"type": "object"}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif isinstance(choice, dict) and choice.get("function"):
        config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    return config
