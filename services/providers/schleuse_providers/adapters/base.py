"""The port every provider adapter implements, and helpers they share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import httpx2

from schleuse_common.contracts.providers import GenerateChunk, GenerateRequest
from schleuse_providers.domain.errors import (
    AuthenticationFailed,
    BadRequest,
    ProviderError,
    RateLimited,
    Unavailable,
)
from schleuse_providers.domain.model import ModelSpec, ProviderSpec


class ProviderAdapter(Protocol):
    """Streams one completion: chunks with `delta`/`tool_calls`, the last one with `finish_reason`
    and `usage` when the provider reports it. Raises domain ProviderErrors only."""

    def stream(self, model: ModelSpec, request: GenerateRequest) -> AsyncIterator[GenerateChunk]: ...

    async def aclose(self) -> None: ...


def http_client(spec: ProviderSpec) -> httpx2.AsyncClient:
    """One shared client per provider (the SDKs speak httpx2): its proxy, connect timeout, keep-alive pool."""
    t = spec.timeouts
    return httpx2.AsyncClient(
        proxy=spec.proxy or None,
        timeout=httpx2.Timeout(t.total, connect=t.connect, read=t.first_token),
        limits=httpx2.Limits(max_connections=max(10, spec.max_concurrency * 2), max_keepalive_connections=20),
        trust_env=False,  # the provider's own proxy setting, not the process environment
        follow_redirects=True,
    )


def error_for_status(status: int, message: str, provider: str, retry_after: float | None = None) -> ProviderError:
    """Map an upstream HTTP status to a domain error (message must hold no prompt text)."""
    if status in (401, 403):
        return AuthenticationFailed(message, provider=provider)
    if status == 429:
        return RateLimited(message, provider=provider, retry_after=retry_after)
    if status in (408, 409) or status >= 500:
        return Unavailable(message, provider=provider, retry_after=retry_after)
    return BadRequest(message, provider=provider)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (HTTP-date form is rare from LLM APIs and ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
