"""Security headers on every response: CSP with configurable frame-ancestors, HSTS when served over TLS."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schleuse_gateway.settings import GatewaySettings

# FastAPI's interactive docs load Swagger UI from a CDN; only those pages may.
DOCS_PATHS = ("/docs", "/redoc")
DOCS_SOURCES = "https://cdn.jsdelivr.net"


class SecurityHeaders:
    """A plain ASGI middleware (no per-request objects), so the hot path pays almost nothing."""

    def __init__(self, app: ASGIApp, settings: GatewaySettings) -> None:
        self.app = app
        csp = f"{settings.content_security_policy.rstrip('; ')}; frame-ancestors {settings.frame_ancestors}"
        docs_csp = (
            f"default-src 'self'; script-src 'self' 'unsafe-inline' {DOCS_SOURCES}; "
            f"style-src 'self' 'unsafe-inline' {DOCS_SOURCES}; img-src 'self' data: https://fastapi.tiangolo.com; "
            f"frame-ancestors {settings.frame_ancestors}"
        )
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if settings.frame_ancestors.strip() == "'none'":
            common.append((b"x-frame-options", b"DENY"))
        self.headers = [*common, (b"content-security-policy", csp.encode())]
        self.docs_headers = [*common, (b"content-security-policy", docs_csp.encode())]
        self.hsts = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
        self.tls = settings.tls
        self.trust_forwarded = settings.trust_forwarded_proto

    def _is_tls(self, scope: Scope) -> bool:
        if self.tls or scope.get("scheme") == "https":
            return True
        if self.trust_forwarded:
            return any(k == b"x-forwarded-proto" and v == b"https" for k, v in scope.get("headers", []))
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.docs_headers if scope["path"].startswith(DOCS_PATHS) else self.headers
        if self._is_tls(scope):
            extra = [*extra, self.hsts]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
