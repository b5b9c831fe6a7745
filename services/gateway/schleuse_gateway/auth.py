"""Who is calling: API keys, browser sessions and OIDC bearer tokens resolved to a signed actor.

The hot path (an API key on `/v1`) is an in-memory hit plus one pipelined Redis round trip for the
rate limit. Revocations and user changes are announced on core NATS so every replica forgets at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import structlog
from nats.aio.msg import Msg
from starlette.requests import Request

from schleuse_common.auth import Actor, keyed_hash
from schleuse_common.bus import Bus
from schleuse_common.db import Database
from schleuse_gateway import store
from schleuse_gateway.domain.claims import ClaimsMapping, map_claims
from schleuse_gateway.domain.keys import digest_key, looks_like_key
from schleuse_gateway.domain.scopes import ALL, SAFE_METHODS, grants, required_scope
from schleuse_gateway.identity.oidc import OidcClient, OidcError
from schleuse_gateway.identity.ratelimit import RateLimiter
from schleuse_gateway.identity.sessions import Session, SessionStore

log = structlog.get_logger("schleuse.gateway.auth")

TOUCH_EVERY_S = 60.0
TOKEN_CACHE_MAX_S = 300.0
KEYS_REVOKED = "gateway.keys.revoked"
USERS_CHANGED = "gateway.users.changed"
CHAT_COMPLETIONS = "/v1/chat/completions"


class AuthError(Exception):
    """A request that may not proceed; `status` and `code` map it to HTTP at the edge."""

    status = 401
    code = "unauthenticated"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class Unauthenticated(AuthError):
    """No or an invalid credential."""


class Forbidden(AuthError):
    """A valid credential that may not do this (scope, assistant, CSRF)."""

    status = 403
    code = "forbidden"


class RateLimited(AuthError):
    """Too many requests for this user or key."""

    status = 429
    code = "rate_limited"


Method = Literal["api_key", "session", "bearer_token"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the signed actor plus what its credential allows."""

    actor: Actor
    method: Method
    scopes: tuple[str, ...] = (ALL,)
    allowed_assistants: tuple[str, ...] = ()
    rate_limit: int | None = None
    session_id: str | None = None
    session: Session | None = None
    expires: float = float("inf")  # wall clock; for cached keys and tokens

    def may_use_assistant(self, assistant_id: str | None) -> bool:
        """True when the credential is not restricted to assistants, or `assistant_id` is one of them."""
        return not self.allowed_assistants or assistant_id in self.allowed_assistants


def _expiry(at: Any) -> float:
    return at.timestamp() if at is not None else float("inf")


@dataclass
class Authenticator:
    """Resolves credentials to principals and enforces scope, CSRF and rate limits on every request."""

    db: Database
    actor_key: bytes
    cache_seconds: float = 10.0
    sessions: SessionStore | None = None
    limiter: RateLimiter | None = None
    oidc: OidcClient | None = None
    mapping: ClaimsMapping = field(default_factory=ClaimsMapping)
    claims_decide_roles: bool = True
    keep_display_name: bool = False
    keep_email: bool = False
    user_limit: int = 0
    key_limit: int = 0
    session_cookie: str = "schleuse_session"
    csrf_header: str = "x-csrf-token"
    _cache: dict[str, tuple[float, Principal | None]] = field(default_factory=dict)
    _token_cache: dict[str, tuple[float, Principal]] = field(default_factory=dict)
    _touched: dict[str, float] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    # -- the request path ----------------------------------------------------------------

    async def authenticate(self, request: Request) -> Principal:
        """The principal of a request (memoised on it); raises AuthError subclasses."""
        state = request.scope.setdefault("state", {})
        principal: Principal | None = state.get("principal")
        if principal is not None:
            return principal
        principal = await self._resolve(request)
        method, path = request.scope["method"], request.scope["path"]
        needed = required_scope(method, path)
        if not grants(principal.scopes, needed):
            raise Forbidden(f"this API key lacks the scope {needed}")
        if principal.allowed_assistants and path == CHAT_COMPLETIONS:
            await self._check_assistant(request, principal)
        await self._rate_limit(principal)
        state["principal"] = principal
        return principal

    async def actor_for_authorization(self, header: str | None) -> Actor:
        """The actor behind an `Authorization: Bearer ...` header (no scope or rate checks)."""
        return (await self._bearer(header)).actor

    async def _resolve(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header:
            return await self._bearer(header)
        cookie = request.cookies.get(self.session_cookie) if self.sessions else None
        if cookie:
            return await self._session(request, cookie)
        raise Unauthenticated("missing credential: send an API key or token as Bearer, or log in")

    async def _bearer(self, header: str | None) -> Principal:
        if not header or not header[:7].lower() == "bearer ":
            raise Unauthenticated("missing bearer credential")
        token = header[7:].strip()
        if looks_like_key(token):
            return await self._api_key(token)
        if self.oidc is not None and token.count(".") == 2:
            return await self._token(token)
        raise Unauthenticated("invalid API key")

    async def _api_key(self, token: str) -> Principal:
        digest = digest_key(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            principal = hit[1]
        else:
            principal = await self._load_key(digest)
            self._cache[digest] = (now + self.cache_seconds, principal)
        if principal is None or principal.expires <= time.time():
            raise Unauthenticated("invalid API key")
        self._touch_later(principal.actor.key_id or "", now)
        return principal

    async def _load_key(self, digest: str) -> Principal | None:
        async with self.db.session() as session:
            owner = await store.owner_of_key(session, digest)
        if owner is None:
            return None
        actor = Actor(
            id=owner.user_id, kind="api_key", roles=owner.roles, department=owner.department, key_id=owner.key_id
        )
        return Principal(
            actor=actor.signed(self.actor_key),
            method="api_key",
            scopes=tuple(owner.scopes),
            allowed_assistants=tuple(owner.allowed_assistants),
            rate_limit=owner.rate_limit,
            expires=_expiry(owner.expires_at),
        )

    async def _token(self, token: str) -> Principal:
        assert self.oidc is not None
        digest = hashlib.sha256(token.encode()).hexdigest()
        hit = self._token_cache.get(digest)
        if hit is not None and hit[0] > time.time():
            return hit[1]
        audiences = [self.oidc.config.client_id, *self.oidc.config.api_audiences]
        try:
            claims = await self.oidc.verify(token, audiences=audiences)
        except OidcError as e:
            raise Unauthenticated(str(e)) from e
        user = await self.user_for_claims(claims)
        if not user.active:
            raise Unauthenticated("account disabled")
        principal = Principal(actor=self.actor_of(user), method="bearer_token")
        until = min(float(claims["exp"]), time.time() + TOKEN_CACHE_MAX_S)
        if len(self._token_cache) > 10_000:
            self._token_cache.clear()
        self._token_cache[digest] = (until, principal)
        return principal

    async def _session(self, request: Request, cookie: str) -> Principal:
        assert self.sessions is not None
        session = await self.sessions.touch(cookie)
        if session is None:
            raise Unauthenticated("session expired; log in again")
        if request.scope["method"] not in SAFE_METHODS:
            sent = request.headers.get(self.csrf_header, "")
            if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                raise Forbidden(f"missing or wrong CSRF token (send the {self.csrf_header} header)")
        return Principal(actor=session.actor, method="session", session_id=cookie, session=session)

    async def _check_assistant(self, request: Request, principal: Principal) -> None:
        try:
            model = orjson.loads(await request.body()).get("model")
        except (orjson.JSONDecodeError, AttributeError):
            return  # the route itself answers 400 for a body it cannot read
        assistant = (
            model.removeprefix("assistant:") if isinstance(model, str) and model.startswith("assistant:") else None
        )
        if not principal.may_use_assistant(assistant):
            raise Forbidden("this API key may only use its allowed assistants (model `assistant:<id>`)")

    async def _rate_limit(self, principal: Principal) -> None:
        if self.limiter is None:
            return
        buckets = [(f"user:{principal.actor.id}", self.user_limit)]
        if principal.method == "api_key" and principal.actor.key_id:
            limit = principal.rate_limit if principal.rate_limit is not None else self.key_limit
            buckets.append((f"key:{principal.actor.key_id}", limit))
        wait = await self.limiter.hit(buckets)
        if wait is not None:
            raise RateLimited("rate limit exceeded; slow down", retry_after=max(1.0, wait))

    # -- people ---------------------------------------------------------------------------

    def actor_of(self, user: store.UserRow) -> Actor:
        """The signed actor of a stored user."""
        kind = "service" if user.kind == "service" else "user"
        return Actor(id=user.id, kind=kind, roles=user.roles, department=user.department).signed(self.actor_key)

    def subject_hash(self, issuer: str, subject: str) -> str:
        """The pseudonym of a person: a keyed hash of issuer and subject."""
        return keyed_hash(self.actor_key, issuer, subject)

    async def user_for_claims(self, claims: dict[str, Any]) -> store.UserRow:
        """The user of verified OIDC claims, created on first sight, department and roles from the mapping."""
        mapped = map_claims(claims, self.mapping)
        name = claims.get("name") if self.keep_display_name else None
        email = claims.get("email") if self.keep_email else None
        async with self.db.session() as session:
            if mapped.department:
                await store.ensure_department(session, mapped.department)
            return await store.upsert_oidc_user(
                session,
                subject_hash=self.subject_hash(str(claims["iss"]), str(claims["sub"])),
                roles=mapped.roles,
                department=mapped.department,
                display_name=str(name)[:200] if isinstance(name, str) else None,
                email=str(email)[:320] if isinstance(email, str) else None,
                claims_decide_roles=self.claims_decide_roles,
            )

    # -- cache, revocation ---------------------------------------------------------------

    def forget(self, *, key_id: str | None = None, user_id: str | None = None) -> None:
        """Drop cached credentials of a key or a user (everything when neither is given)."""
        if key_id is None and user_id is None:
            self._cache.clear()
            self._token_cache.clear()
            return
        for digest, (_, p) in list(self._cache.items()):
            if p is not None and (p.actor.key_id == key_id or p.actor.id == user_id):
                self._cache.pop(digest, None)
        if user_id is not None:
            for digest, (_, p) in list(self._token_cache.items()):
                if p.actor.id == user_id:
                    self._token_cache.pop(digest, None)

    async def listen(self, bus: Bus) -> None:
        """Forget revoked keys and changed users announced by any replica (core NATS, every instance)."""

        async def on_message(msg: Msg) -> None:
            try:
                body = orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                return
            self.forget(key_id=body.get("key_id"), user_id=body.get("user_id"))

        await bus.nc.subscribe(KEYS_REVOKED, cb=on_message)
        await bus.nc.subscribe(USERS_CHANGED, cb=on_message)

    async def announce(self, bus: Bus, *, key_id: str | None = None, user_id: str | None = None) -> None:
        """Forget here at once, and tell every other replica."""
        self.forget(key_id=key_id, user_id=user_id)
        subject = KEYS_REVOKED if key_id is not None else USERS_CHANGED
        await bus.nc.publish(subject, orjson.dumps({"key_id": key_id, "user_id": user_id}))
        await bus.nc.flush(timeout=2)

    def _touch_later(self, key_id: str, now: float) -> None:
        if now - self._touched.get(key_id, 0.0) < TOUCH_EVERY_S:
            return
        self._touched[key_id] = now

        async def touch() -> None:
            async with self.db.session() as session:
                await store.touch_key(session, key_id)

        task = asyncio.create_task(touch())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
