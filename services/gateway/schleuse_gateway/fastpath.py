"""The hot `/v1` routes served straight from ASGI: same handlers, without FastAPI's per-request machinery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]


class FastPath:
    """Dispatch exact (method, path) matches to `routes`, through `wrap` (e.g. security headers); all else to `app`."""

    def __init__(
        self, app: ASGIApp, routes: dict[tuple[str, str], Handler], wrap: Callable[[ASGIApp], ASGIApp]
    ) -> None:
        self.app = app
        self.routes = routes
        self.fast = wrap(self._serve)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["method"], scope["path"]) in self.routes:
            await self.fast(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app
        handler = self.routes[(scope["method"], scope["path"])]
        response = await handler(Request(scope, receive))
        await response(scope, receive, send)
