"""FastAPI dependencies every `/api` route uses: who is calling, and may they."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from schleuse_common.auth import Actor
from schleuse_gateway.auth import Authenticator, AuthError, Principal


class HTTPProblem(Exception):
    """Raised by routes and dependencies; rendered once as RFC 9457 problem details."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: object,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


TITLES = {401: "Unauthenticated", 403: "Forbidden", 429: "Too many requests"}


def problem_of(error: AuthError) -> HTTPProblem:
    """An authentication failure as problem details (with `Retry-After` on 429)."""
    headers = {"Retry-After": str(max(1, round(error.retry_after)))} if error.retry_after else None
    return HTTPProblem(error.status, TITLES.get(error.status, "Error"), error.message, headers=headers, code=error.code)


async def current_principal(request: Request) -> Principal:
    """The authenticated caller with what its credential allows (scopes, assistants, session)."""
    auth: Authenticator = request.app.state.auth
    try:
        return await auth.authenticate(request)
    except AuthError as e:
        raise problem_of(e) from e


async def current_actor(request: Request) -> Actor:
    """The signed actor of the request: API key, OIDC bearer token or session cookie (CSRF-checked)."""
    return (await current_principal(request)).actor


def require_roles(*roles: str) -> Callable[[Request], Awaitable[Actor]]:
    """A dependency that admits actors holding any of `roles` (403 otherwise, 401 when anonymous)."""

    async def dependency(request: Request) -> Actor:
        actor = await current_actor(request)
        if not actor.has_role(*roles):
            raise HTTPProblem(403, "Forbidden", f"requires one of the roles: {', '.join(roles)}", code="forbidden")
        return actor

    dependency.required_roles = roles  # type: ignore[attr-defined]  # read by the RBAC matrix test
    return dependency


def ensure_assistant_allowed(request: Request, assistant_id: str | None) -> None:
    """403 when the caller's API key is restricted to other assistants (call after authenticating)."""
    principal: Principal | None = request.scope.get("state", {}).get("principal")
    if principal is not None and not principal.may_use_assistant(assistant_id):
        raise HTTPProblem(403, "Forbidden", "this API key may not use this assistant")
