"""`/api/auth`: local login, OIDC login (code + PKCE), session refresh, logout, who am I, own password."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, RedirectResponse, Response

from schleuse_gateway import store
from schleuse_gateway.auth import Principal
from schleuse_gateway.deps import HTTPProblem, current_principal
from schleuse_gateway.domain.passwords import WeakPassword, verify_password
from schleuse_gateway.identity.accounts import LoginRefused
from schleuse_gateway.identity.oidc import OidcError
from schleuse_gateway.identity.sessions import Session
from schleuse_gateway.identity.wiring import Identity


class LoginRequest(BaseModel):
    login: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class SessionInfo(BaseModel):
    """The caller as the web UI needs it: pseudonymous id, roles, department, CSRF token for sessions."""

    id: str
    kind: str
    method: str
    roles: list[str]
    department: str | None
    display_name: str | None = None
    csrf_token: str | None = None
    expires_at: datetime | None = None
    idle_timeout_seconds: float | None = None


class LogoutResult(BaseModel):
    logged_out: bool
    provider_logout_url: str | None = None


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


def _identity(request: Request) -> Identity:
    identity: Identity = request.app.state.identity
    return identity


def _session_info(identity: Identity, principal: Principal, display_name: str | None = None) -> SessionInfo:
    session = principal.session
    return SessionInfo(
        id=principal.actor.id,
        kind=principal.actor.kind,
        method=principal.method,
        roles=principal.actor.roles,
        department=principal.actor.department,
        display_name=display_name,
        csrf_token=session.csrf if session else None,
        expires_at=datetime.fromtimestamp(session.expires, UTC) if session else None,
        idle_timeout_seconds=identity.settings.session_idle_seconds if session else None,
    )


def set_session_cookies(identity: Identity, response: Response, session_id: str, session: Session) -> None:
    """Session cookie (HttpOnly) and the CSRF cookie the web UI reads and echoes in a header."""
    s = identity.settings
    response.set_cookie(s.session_cookie, session_id, httponly=True, secure=s.tls, samesite="lax", path="/")
    response.set_cookie(s.csrf_cookie, session.csrf, httponly=False, secure=s.tls, samesite="lax", path="/")


def clear_session_cookies(identity: Identity, response: Response) -> None:
    """Remove both cookies."""
    s = identity.settings
    response.delete_cookie(s.session_cookie, path="/", secure=s.tls, httponly=True, samesite="lax")
    response.delete_cookie(s.csrf_cookie, path="/", secure=s.tls, samesite="lax")


def _safe_return_to(value: str | None) -> str:
    # Only same-site paths: an absolute URL here would make the login an open redirect.
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def build_router() -> APIRouter:
    """Routes of `/api/auth`."""
    router = APIRouter(prefix="/api/auth", tags=["auth"])

    @router.post("/login", response_model=SessionInfo, summary="Log in with a local account")
    async def login(body: LoginRequest, request: Request) -> Response:
        identity = _identity(request)
        try:
            user = await identity.accounts.login(body.login, body.password)
        except LoginRefused as e:
            headers = {"Retry-After": str(max(1, round(e.retry_after)))} if e.retry_after else None
            title = "Account locked" if e.status == 423 else "Login failed"
            raise HTTPProblem(e.status, title, e.message, headers=headers) from e
        actor = identity.auth.actor_of(user)
        session_id, session = await identity.sessions.create(actor, "local")
        principal = Principal(actor=actor, method="session", session_id=session_id, session=session)
        info = _session_info(identity, principal, user.display_name)
        response = JSONResponse(info.model_dump(mode="json"))
        set_session_cookies(identity, response, session_id, session)
        return response

    @router.get("/oidc/login", summary="Start a login at the organisation's OpenID provider")
    async def oidc_login(request: Request, return_to: str | None = None, login_hint: str | None = None) -> Response:
        identity = _identity(request)
        if identity.oidc is None:
            raise HTTPProblem(404, "Not found", "no OpenID provider is configured")
        try:
            url = await identity.oidc.begin(return_to=_safe_return_to(return_to), login_hint=login_hint)
        except OidcError as e:
            raise HTTPProblem(502, "Identity provider unusable", str(e)) from e
        return RedirectResponse(url, status_code=302)

    @router.get("/oidc/callback", summary="Where the OpenID provider sends the browser back")
    async def oidc_callback(
        request: Request, code: str | None = None, state: str | None = None, error: str | None = None
    ) -> Response:
        identity = _identity(request)
        if identity.oidc is None:
            raise HTTPProblem(404, "Not found", "no OpenID provider is configured")
        if error or not code or not state:
            raise HTTPProblem(400, "Login failed", f"provider answered: {(error or 'no code')[:64]}")
        try:
            tokens = await identity.oidc.finish(code=code, state=state)
        except OidcError as e:
            await identity.auditor.record(
                "identity", "login", target_type="user", target_id=None, actor=None, outcome="failed", method="oidc"
            )
            raise HTTPProblem(400, "Login failed", str(e)) from e
        user = await identity.auth.user_for_claims(tokens.claims)
        if not user.active:
            raise HTTPProblem(403, "Forbidden", "account disabled")
        actor = identity.auth.actor_of(user)
        await identity.auditor.record(
            "identity", "login", target_type="user", target_id=user.id, actor=actor, method="oidc"
        )
        session_id, session = await identity.sessions.create(
            actor, "oidc", id_token=tokens.id_token, refresh_token=tokens.refresh_token
        )
        response = RedirectResponse(_safe_return_to(tokens.return_to), status_code=303)
        set_session_cookies(identity, response, session_id, session)
        return response

    @router.get("/me", response_model=SessionInfo, summary="Who is calling")
    async def me(request: Request, principal: Principal = Depends(current_principal)) -> SessionInfo:
        identity = _identity(request)
        async with identity.auth.db.session() as session:
            user = await store.get_user(session, principal.actor.id)
        return _session_info(identity, principal, user.display_name if user else None)

    @router.post("/refresh", response_model=SessionInfo, summary="Renew the session (new id and CSRF token)")
    async def refresh(request: Request, principal: Principal = Depends(current_principal)) -> Response:
        identity = _identity(request)
        if principal.session is None or principal.session_id is None:
            raise HTTPProblem(
                400, "Not a session", "only browser sessions are refreshed; tokens are renewed at the provider"
            )
        session = principal.session
        actor = None
        if session.method == "oidc" and session.refresh_token and identity.oidc is not None:
            try:
                tokens = await identity.oidc.refresh(session.refresh_token)
            except OidcError as e:
                await identity.sessions.delete(principal.session_id, principal.actor.id)
                raise HTTPProblem(401, "Unauthenticated", f"provider refused the refresh: {e}") from e
            user = await identity.auth.user_for_claims(tokens.claims)
            actor = identity.auth.actor_of(user)
            session = session.model_copy(update={"id_token": tokens.id_token, "refresh_token": tokens.refresh_token})
        else:
            async with identity.auth.db.session() as db:
                user = await store.get_user(db, principal.actor.id)
            if user is None or not user.active:
                await identity.sessions.delete(principal.session_id, principal.actor.id)
                raise HTTPProblem(401, "Unauthenticated", "account disabled")
            actor = identity.auth.actor_of(user)
        new_id, fresh = await identity.sessions.rotate(principal.session_id, session, actor)
        info = _session_info(identity, Principal(actor=fresh.actor, method="session", session=fresh))
        response = JSONResponse(info.model_dump(mode="json"))
        set_session_cookies(identity, response, new_id, fresh)
        return response

    @router.post("/logout", response_model=LogoutResult, summary="End the session (and at the provider)")
    async def logout(request: Request, principal: Principal = Depends(current_principal)) -> Response:
        identity = _identity(request)
        provider_url = None
        if principal.session is not None and principal.session_id is not None:
            await identity.sessions.delete(principal.session_id, principal.actor.id)
            if principal.session.method == "oidc" and identity.oidc is not None:
                provider_url = await identity.oidc.end_session_url(principal.session.id_token)
        await identity.auditor.record(
            "identity", "logout", target_type="user", target_id=principal.actor.id, actor=principal.actor
        )
        body: dict[str, Any] = LogoutResult(
            logged_out=principal.session is not None, provider_logout_url=provider_url
        ).model_dump()
        response = JSONResponse(body)
        clear_session_cookies(identity, response)
        return response

    @router.post("/password", status_code=204, summary="Change one's own local password")
    async def change_password(
        body: PasswordChange, request: Request, principal: Principal = Depends(current_principal)
    ) -> Response:
        identity = _identity(request)
        async with identity.auth.db.session() as session:
            user = await store.get_user(session, principal.actor.id)
            stored = await _password_hash(session, principal.actor.id)
        if user is None or user.kind != "local" or principal.method == "api_key":
            raise HTTPProblem(400, "Not a local account", "passwords of this account are managed elsewhere")
        if not verify_password(stored, body.current_password):
            raise HTTPProblem(403, "Forbidden", "current password is wrong")
        try:
            await identity.accounts.set_password(
                user.id, body.new_password, actor=principal.actor, action="password_changed"
            )
        except WeakPassword as e:
            raise HTTPProblem(422, "Weak password", str(e)) from e
        await identity.sessions.end_all(user.id)  # a changed password ends every other session
        response = Response(status_code=204)
        if principal.method == "session":
            session_id, session = await identity.sessions.create(identity.auth.actor_of(user), "local")
            set_session_cookies(identity, response, session_id, session)
        return response

    return router


async def _password_hash(session: Any, user_id: str) -> str | None:
    row = (
        await session.execute(
            store.users.select().with_only_columns(store.users.c.password_hash).where(store.users.c.id == user_id)
        )
    ).first()
    return row.password_hash if row else None
