"""The demo provider served in the test process, recording every request body it receives (what left the house)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from schleuse_common.devstack import free_port, reachable
from schleuse_providers.demo_server import DemoApp


class RecordingUpstream:
    """ASGI wrapper around the demo provider that keeps the raw bodies of chat requests."""

    def __init__(self) -> None:
        self.app = DemoApp()
        self.bodies: list[bytes] = []
        self.port = free_port()
        self._server: uvicorn.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording_receive() -> dict[str, Any]:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                self.bodies.append(b"".join(chunks))
            return message  # type: ignore[no-any-return]

        await self.app(scope, recording_receive, send)

    def seen(self) -> str:
        """Everything the upstream received, as one text."""
        return b"\n".join(self.bodies).decode("utf-8", errors="replace")

    def start(self) -> None:
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        threading.Thread(target=self._server.run, daemon=True).start()
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("recording upstream did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
