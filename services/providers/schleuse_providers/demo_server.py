"""The bundled demo provider: a tiny, fast, deterministic OpenAI-compatible server.

Run it with ``python -m schleuse_providers.demo_server --port 8099``. It speaks
``POST /v1/chat/completions`` (JSON and SSE, ``stream_options.include_usage``) and
``GET /v1/models``. Tests steer it with markers in the last user message:

- ``[[demo:echo]]``       answer with the exact text of the last user message (what left the house)
- ``[[demo:fail500]]``    HTTP 500 (also ``fail502``, ``fail503``, ``fail401``, ``fail400``)
- ``[[demo:fail429]]``    HTTP 429 with ``Retry-After: 1``
- ``[[demo:slow=MS]]``    wait MS milliseconds before the first byte
- ``[[demo:malformed]]``  a stream that breaks off with invalid JSON and no ``[DONE]``
- ``[[demo:tool]]``       answer with a tool call to the first offered tool
- ``[[demo:long=N]]``     an answer of N words
- ``[[demo:nousage]]``    no usage in the answer, as some local servers do

Or globally: env ``SCHLEUSE_DEMO_FAIL=500`` (every request fails with that status), or at run
time ``POST /_demo/mode`` with ``{"fail": 503, "slow_ms": 200}`` (``null`` clears), ``GET /_demo/stats``
(requests, markers seen, most calls in flight at once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEMO_MODEL = "schleuse-demo"
_MARKER = re.compile(r"\[\[demo:([a-z0-9]+)(?:=(\d+))?\]\]")
_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z_]*_\d+\]")
_FAIL_STATUSES = {
    "fail400": 400,
    "fail401": 401,
    "fail429": 429,
    "fail500": 500,
    "fail502": 502,
    "fail503": 503,
}
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


@dataclass
class DemoState:
    """Run-time switches and counters of one demo server."""

    fail: int | None = None
    slow_ms: int | None = None
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_marker: dict[str, int] = field(default_factory=dict)


def count_tokens(text: str) -> int:
    """Rough token count (about four characters a token), deterministic and cheap."""
    return max(1, (len(text) + 3) // 4) if text else 0


def _markers(text: str) -> dict[str, int | None]:
    return {m.group(1): (int(m.group(2)) if m.group(2) else None) for m in _MARKER.finditer(text)}


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def demo_answer(prompt: str, words: int | None = None) -> str:
    """The deterministic answer; placeholders in the prompt are repeated so restore is visible."""
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:8]
    placeholders = list(dict.fromkeys(_PLACEHOLDER.findall(prompt)))
    parts = [f"Dies ist eine Antwort des Schleuse-Demo-Anbieters (kein echtes Sprachmodell, Ref {digest})."]
    if placeholders:
        parts.append("Erkannte Platzhalter: " + ", ".join(placeholders) + ".")
    parts.append("Konfigurieren Sie einen Anbieter, um echte Antworten zu erhalten.")
    text = " ".join(parts)
    if words:
        base = text.split()
        text = " ".join(base[i % len(base)] for i in range(words))
    return text


def _completion_id(prompt: str) -> str:
    return "chatcmpl-demo-" + hashlib.sha256(prompt.encode()).hexdigest()[:16]


class DemoApp:
    """Raw ASGI app: no framework on the hot path, so the demo adds next to no latency."""

    def __init__(self, state: DemoState | None = None) -> None:
        self.state = state or DemoState(fail=_env_fail())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"].rstrip("/")
        if method == "POST" and path.endswith("/chat/completions"):
            await self._chat(scope, receive, send)
        elif method == "GET" and path.endswith("/models"):
            await _json(send, 200, {"object": "list", "data": [_model_entry()]})
        elif method == "GET" and path in ("/healthz", "/_demo/stats"):
            state = self.state
            stats = {
                "requests": state.requests,
                "by_marker": state.by_marker,
                "max_in_flight": state.max_in_flight,
            }
            await _json(send, 200, stats)
        elif method == "POST" and path == "/_demo/mode":
            body = orjson.loads(await _body(receive) or b"{}")
            self.state.fail = body.get("fail", self.state.fail)
            self.state.slow_ms = body.get("slow_ms", self.state.slow_ms)
            await _json(send, 200, {"fail": self.state.fail, "slow_ms": self.state.slow_ms})
        else:
            await _json(send, 404, _error("not found", "not_found"))

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        state.requests += 1
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await self._chat_counted(receive, send)
        finally:
            state.in_flight -= 1

    async def _chat_counted(self, receive: Receive, send: Send) -> None:
        try:
            body = orjson.loads(await _body(receive))
            messages = body["messages"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await _json(send, 400, _error("invalid request body", "invalid_request_error"))
            return
        prompt = _last_user_text(messages)
        marks = _markers(prompt)
        for name in marks:
            self.state.by_marker[name] = self.state.by_marker.get(name, 0) + 1
        slow_ms = marks.get("slow", self.state.slow_ms)
        if slow_ms:
            await asyncio.sleep(slow_ms / 1000)
        status = self.state.fail or next((_FAIL_STATUSES[m] for m in marks if m in _FAIL_STATUSES), None)
        if status:
            headers = [(b"retry-after", b"1")] if status in (429, 503) else []
            await _json(send, status, _error(f"demo failure {status}", _error_type(status)), headers)
            return
        await self._answer(body, messages, prompt, marks, send)

    async def _answer(
        self,
        body: dict[str, Any],
        messages: list[dict[str, Any]],
        prompt: str,
        marks: dict[str, int | None],
        send: Send,
    ) -> None:
        model = body.get("model") or DEMO_MODEL
        text = prompt if "echo" in marks else demo_answer(prompt, marks.get("long"))
        tool_calls = _tool_calls(body) if "tool" in marks and body.get("tools") else None
        if tool_calls:
            text = ""
        prompt_tokens = sum(count_tokens(_text_of(m.get("content"))) + 4 for m in messages)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": count_tokens(text) + (8 if tool_calls else 0),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        cid, created = _completion_id(prompt), int(time.time())
        if not body.get("stream"):
            if "nousage" in marks:
                usage = {}
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if tool_calls:
                message["tool_calls"] = tool_calls
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}
            await _json(send, 200, _envelope(cid, created, model, "chat.completion", [choice], usage))
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and "nousage" not in marks
        await send({"type": "http.response.start", "status": 200, "headers": _SSE})
        events = _stream_events(cid, created, model, text, tool_calls, usage if include_usage else None)
        if "malformed" in marks:
            events = [*events[:2], b'data: {"id": "broken", "choices": [{"delta": {"content": "x"\n\n']
        for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _stream_events(
    cid: str,
    created: int,
    model: str,
    text: str,
    tool_calls: list[dict[str, Any]] | None,
    usage: dict[str, int] | None,
) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        env = _envelope(cid, created, model, "chat.completion.chunk", [choice], None)
        return b"data: " + orjson.dumps(env) + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""}, None)]
    words = text.split(" ") if text else []
    events += [chunk({"content": w if i == 0 else " " + w}, None) for i, w in enumerate(words)]
    if tool_calls:
        events += [chunk({"tool_calls": [{"index": i, **tc}]}, None) for i, tc in enumerate(tool_calls)]
    events.append(chunk({}, "tool_calls" if tool_calls else "stop"))
    if usage is not None:
        env = _envelope(cid, created, model, "chat.completion.chunk", [], usage)
        events.append(b"data: " + orjson.dumps(env) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def _tool_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    tool = body["tools"][0]
    name = (tool.get("function") or {}).get("name", "tool")
    return [{"id": "call_demo_1", "type": "function", "function": {"name": name, "arguments": '{"demo": true}'}}]


def _envelope(
    cid: str, created: int, model: str, obj: str, choices: list[Any], usage: dict[str, int] | None
) -> dict[str, Any]:
    env: dict[str, Any] = {"id": cid, "object": obj, "created": created, "model": model, "choices": choices}
    env["system_fingerprint"] = "schleuse-demo"
    if usage:
        env["usage"] = usage
    return env


def _model_entry() -> dict[str, Any]:
    return {"id": DEMO_MODEL, "object": "model", "created": 0, "owned_by": "schleuse-demo"}


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def _error_type(status: int) -> str:
    return {401: "invalid_api_key", 429: "rate_limit_exceeded", 400: "invalid_request_error"}.get(
        status, "server_error"
    )


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _json(send: Send, status: int, payload: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON + (extra or [])})
    await send({"type": "http.response.body", "body": orjson.dumps(payload)})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _env_fail() -> int | None:
    value = os.environ.get("SCHLEUSE_DEMO_FAIL")
    return int(value) if value else None


def create_app() -> DemoApp:
    """The demo ASGI app (its state is `app.state`)."""
    return DemoApp()


@contextlib.asynccontextmanager
async def running(host: str = "127.0.0.1", port: int = 0, app: Any = None, path: str = "/v1") -> AsyncIterator[str]:
    """Run a demo (or any ASGI) server inside the current event loop (for tests); yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        app or create_app(),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no startup event
        await asyncio.sleep(0.005)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}{path}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m schleuse_providers.demo_server --port 8099``."""
    import uvicorn

    parser = argparse.ArgumentParser(description="Schleuse demo provider (OpenAI-compatible)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SCHLEUSE_DEMO_PORT", "8099")))
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="httptools",
        loop="uvloop",
    )


if __name__ == "__main__":
    main()
