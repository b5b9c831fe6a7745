"""A base for fake provider servers: raw ASGI, request recording, behaviour chosen by a marker.

The last user text may hold `[[fake:401]]`, `[[fake:429]]`, `[[fake:500]]`, `[[fake:slow]]`,
`[[fake:malformed]]`, `[[fake:tool]]`, `[[fake:midstream_error]]`; each fake renders them in its
provider's real wire format.
"""

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

MARKER = re.compile(r"\[\[fake:([a-z0-9_]+)\]\]")


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeState:
    requests: list[Recorded] = field(default_factory=list)
    slow_seconds: float = 3.0


def behaviour(text: str) -> str | None:
    match = MARKER.search(text)
    return match.group(1) if match else None


class FakeServer:
    """Subclasses implement `handle(request, send)`."""

    def __init__(self) -> None:
        self.state = FakeState()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = Recorded(
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode(),
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body=body,
        )
        self.state.requests.append(request)
        await self.handle(request, send)

    @property
    def last(self) -> Recorded:
        return self.state.requests[-1]

    async def handle(self, request: Recorded, send) -> None:
        raise NotImplementedError

    async def slow(self) -> None:
        await asyncio.sleep(self.state.slow_seconds)


async def respond(send, status: int, payload: Any, headers: dict[str, str] | None = None, *, raw: bytes | None = None):
    head = [(b"content-type", b"application/json")]
    head += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": raw if raw is not None else json.dumps(payload).encode()})


async def stream(send, parts: list[bytes], content_type: bytes = b"text/event-stream") -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    for part in parts:
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
