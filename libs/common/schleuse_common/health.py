"""Health endpoints every service serves: `/healthz` (alive), `/readyz` (its dependencies answer), `/metrics`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Check = Callable[[], Awaitable[None]]


async def run_checks(checks: dict[str, Check], timeout: float = 2.0) -> tuple[bool, dict[str, str]]:
    """Run every readiness check; returns overall readiness and a status per dependency."""
    results: dict[str, str] = {}

    async def one(name: str, check: Check) -> None:
        try:
            await asyncio.wait_for(check(), timeout)
            results[name] = "ok"
        except Exception as e:
            results[name] = f"failing: {type(e).__name__}"

    await asyncio.gather(*(one(n, c) for n, c in checks.items()))
    return all(v == "ok" for v in results.values()), results


def health_routes(service: str, checks: dict[str, Check]) -> list[Route]:
    """The three routes, to mount in any Starlette/FastAPI app."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "service": service})

    async def readyz(_: Request) -> Response:
        ready, results = await run_checks(checks)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "service": service, "checks": results},
            status_code=200 if ready else 503,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def health_app(service: str, checks: dict[str, Check]) -> Starlette:
    """A small app with only the health routes, for services without HTTP of their own."""
    return Starlette(routes=health_routes(service, checks))
