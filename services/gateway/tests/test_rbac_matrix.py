"""RBAC over every route of the gateway app, for every role and anonymous (routes collected from the app)."""

from __future__ import annotations

import asyncio
import re

import pytest
from fastapi.routing import APIRoute

from schleuse_common.auth import ROLES
from schleuse_gateway.deps import current_actor, current_principal

from .conftest import Admin, Gateway, make_user

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Routes anyone may call: login entry points, health, the OpenAPI description.
PUBLIC = {
    ("POST", "/api/auth/login"),
    ("GET", "/api/auth/oidc/login"),
    ("GET", "/api/auth/oidc/callback"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}
# Routes that log the caller out or otherwise end the credential used for the matrix.
CREDENTIAL_ENDING = {("POST", "/api/auth/logout"), ("DELETE", "/api/keys/{key_id}"), ("POST", "/api/auth/password")}


def _walk(routes, prefix: str = "", extra: tuple = ()):  # type: ignore[no-untyped-def]
    """Every APIRoute with its full path and the dependencies routers add around it (included routers too)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route, extra
        elif hasattr(route, "original_router"):  # FastAPI's lazily included router
            ctx = route.include_context
            deps = tuple(d.dependency for d in [*ctx.dependencies, *route.original_router.dependencies])
            yield from _walk(route.original_router.routes, prefix + ctx.prefix, extra + deps)
        elif hasattr(route, "routes") and getattr(route, "path", None) is not None:  # a Mount
            yield from _walk(route.routes, prefix + route.path, extra)


def _required_roles(route: APIRoute, extra: tuple) -> tuple[str, ...] | None:  # type: ignore[type-arg]
    """The roles a route's `require_roles` dependency demands; () when any authenticated caller may."""
    calls = [d.call for d in route.dependant.dependencies] + list(extra)
    stack = list(route.dependant.dependencies)
    authenticated = False
    for call in extra:
        roles = getattr(call, "required_roles", None)
        if roles is not None:
            return tuple(roles)
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "required_roles", None)
        if roles is not None:
            return tuple(roles)
        if dep.call in (current_actor, current_principal):
            authenticated = True
        stack.extend(dep.dependencies)
    authenticated = authenticated or any(c in (current_actor, current_principal) for c in calls)
    return () if authenticated else None


def _endpoints(app) -> list[tuple[str, str, APIRoute, tuple]]:  # type: ignore[no-untyped-def,type-arg]
    out = []
    for path, route, extra in _walk(app.routes):
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            out.append((method, path, route, extra))
    return out


async def test_the_walk_finds_every_documented_operation(gateway: Gateway) -> None:
    walked = {(m, p) for m, p, _, _ in _endpoints(gateway.app)}
    documented = {(method.upper(), path) for path, ops in gateway.app.openapi()["paths"].items() for method in ops}
    assert documented and documented <= walked
    assert ("POST", "/v1/chat/completions") in walked and ("GET", "/api/admin/users") in walked


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "0190b3a0-0000-7000-8000-000000000000", path)


GATEWAY_CODES = {"unauthenticated", "forbidden", "invalid_api_key", "missing_api_key"}


async def _call(gw: Gateway, method: str, path: str, headers: dict[str, str]) -> int:
    """The gateway's own answer: 401/403 only when the gateway refused (not a downstream service's error)."""
    async with gw.client() as c:
        try:
            # Streaming routes (SSE) never finish for an admitted caller; a refusal answers at once.
            r = await asyncio.wait_for(c.request(method, _concrete(path), json={}, headers=headers), timeout=5)
        except TimeoutError:
            return 200
    if r.status_code in (401, 403):
        body = r.json()
        code = body["error"]["code"] if isinstance(body.get("error"), dict) else body.get("code")
        if code not in GATEWAY_CODES:
            return 299  # admitted by the gateway; a service behind it refused
    return r.status_code


async def test_every_route_is_either_public_or_refuses_anonymous(gateway: Gateway) -> None:
    unprotected = []
    for method, path, _, _ in _endpoints(gateway.app):
        if (method, path) in PUBLIC:
            continue
        status = await _call(gateway, method, path, {})
        if status != 401:
            unprotected.append((method, path, status))
    assert unprotected == []


async def test_role_matrix(gateway: Gateway, admin: Admin) -> None:
    keys = {role: (await make_user(gateway, admin.key, roles=[role]))["key"] for role in ROLES}
    wrong: list[tuple[str, str, str, int]] = []
    checked = 0
    for method, path, route, extra in _endpoints(gateway.app):
        if (method, path) in PUBLIC or (method, path) in CREDENTIAL_ENDING:
            continue
        required = _required_roles(route, extra)
        for role, key in keys.items():
            status = await _call(gateway, method, path, {"Authorization": f"Bearer {key}"})
            checked += 1
            should_pass = required is None or required == () or role in required
            if should_pass and status in (401, 403):
                wrong.append((method, path, role, status))
            if not should_pass and status != 403:
                wrong.append((method, path, role, status))
    assert wrong == []
    assert checked >= len(ROLES) * 10


async def test_admin_routes_are_admin_only(gateway: Gateway) -> None:
    admin_routes = [(r, e) for _, p, r, e in _endpoints(gateway.app) if p.startswith("/api/admin/")]
    assert admin_routes and all(_required_roles(r, e) == ("admin",) for r, e in admin_routes)
