"""The gateway's HTTP app: `/v1` (OpenAI-compatible), health and metrics."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response
from starlette.types import ASGIApp

from schleuse_common.bus import BusError
from schleuse_common.health import health_routes
from schleuse_common.service import Runtime
from schleuse_gateway.deps import HTTPProblem
from schleuse_gateway.errors import openai_error, problem, status_of
from schleuse_gateway.fastpath import FastPath
from schleuse_gateway.identity.headers import SecurityHeaders
from schleuse_gateway.identity.wiring import build_identity
from schleuse_gateway.openai_api import OpenAIEndpoints
from schleuse_gateway.settings import GatewaySettings


def api_routers(rt: Runtime) -> list[APIRouter]:
    """The `/api` routers of every domain; each module under routes/ adds its own line here."""
    routers: list[APIRouter] = []
    from schleuse_gateway.identity import api_admin, api_auth, api_keys  # identity: login, sessions, keys, admin

    routers.extend([api_auth.build_router(), api_keys.build_router(), api_admin.build_router()])
    from schleuse_gateway.routes import chat  # chat domain: assistants, threads, feedback, library, datasets

    routers.append(chat.build_router(rt, getattr(rt.settings, "turn_timeout_seconds", 120.0)))
    from schleuse_gateway.routes import budgets, providers  # providers registry, models, routing; budgets (admin)

    routers.extend([providers.build_router(rt), budgets.build_router(rt)])
    from schleuse_gateway.routes import calls  # calls dashboard: list, status, notes, bulk, rights, live stream

    routers.append(calls.build_router(rt))
    from schleuse_gateway.routes import dlp  # DLP policies, allow-list terms, fail-open (admin)

    routers.append(dlp.build_router(rt))
    return routers


def create_app(rt: Runtime) -> FastAPI:
    """Assemble routes around a running runtime."""
    settings = rt.settings
    assert isinstance(settings, GatewaySettings)
    assert rt.db is not None
    identity = build_identity(rt)
    auth = identity.auth
    app = FastAPI(
        title="Schleuse gateway",
        version="0.1.0",
        description="Self-hosted, GDPR-first AI gateway: OpenAI-compatible `/v1` and the platform API `/api`.",
    )
    app.state.runtime = rt
    app.state.auth = auth
    app.state.identity = identity
    app.add_middleware(SecurityHeaders, settings=settings)
    openai_endpoints = OpenAIEndpoints(rt.bus, auth, settings.turn_timeout_seconds)
    app.include_router(openai_endpoints.router())
    app.state.fast_paths = openai_endpoints.fast_paths()
    for route in health_routes("gateway", rt.checks):
        app.router.routes.append(route)

    for router in api_routers(rt):
        app.include_router(router)

    @app.exception_handler(HTTPProblem)
    async def http_problem(request: Request, exc: HTTPProblem) -> Response:
        response = problem(exc.status, exc.title, exc.detail, **exc.extra)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(BusError)
    async def bus_error(request: Request, exc: BusError) -> Response:
        return problem(status_of(exc), exc.code.replace("_", " "), exc.message, code=exc.code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        if request.url.path.startswith("/v1"):
            return openai_error(400, f"Invalid request: {detail}", code="invalid_request")
        return problem(422, "Invalid request", detail)

    return app


def create_asgi(rt: Runtime) -> ASGIApp:
    """What the server runs: the hot `/v1` routes on the fast path, everything else through FastAPI."""
    app = create_app(rt)
    settings = rt.settings
    assert isinstance(settings, GatewaySettings)
    return FastPath(app, app.state.fast_paths, wrap=lambda inner: SecurityHeaders(inner, settings=settings))
