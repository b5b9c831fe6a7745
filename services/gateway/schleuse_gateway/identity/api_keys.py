"""`/api/keys`: people create, list and revoke their own API keys (shown once, stored hashed)."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, field_validator

from schleuse_common.auth import Actor
from schleuse_common.ids import utcnow
from schleuse_gateway import store
from schleuse_gateway.auth import Principal
from schleuse_gateway.deps import HTTPProblem, current_principal
from schleuse_gateway.domain.keys import mint_key
from schleuse_gateway.domain.scopes import ALL, DEFAULT_SCOPES, grants, valid_scope
from schleuse_gateway.identity.wiring import Identity


class KeyCreate(BaseModel):
    """A new key: name, scopes (`chat`, `calls:read`, `*` ...), optional expiry and allowed assistants."""

    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(default_factory=lambda: list(DEFAULT_SCOPES), min_length=1, max_length=32)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    expires_at: datetime | None = None
    allowed_assistants: list[str] = Field(default_factory=list, max_length=100)
    rate_limit: int | None = Field(default=None, ge=1, description="requests per window; default from settings")

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not valid_scope(s)]
        if bad:
            raise ValueError(f"unknown scope form: {bad[0]!r} (use `*`, `area` or `area:read|write`)")
        return sorted(set(value))

    def expiry(self) -> datetime | None:
        if self.expires_at is not None:
            return self.expires_at
        return utcnow() + timedelta(days=self.expires_in_days) if self.expires_in_days else None


class KeyRead(BaseModel):
    """A key as listed: the prefix identifies it; the secret is never shown again."""

    id: str
    user_id: str
    name: str
    prefix: str
    scopes: list[str]
    allowed_assistants: list[str]
    rate_limit: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    created_by: str | None


class KeyCreated(KeyRead):
    """The answer to creating a key: the only time `key` is shown."""

    key: str


def key_read(row: store.KeyRow) -> KeyRead:
    """A stored key as the API shows it."""
    return KeyRead(**row.__dict__)


async def issue_key(
    identity: Identity, *, owner_id: str, body: KeyCreate, actor: Actor, issued_by_admin: bool
) -> KeyCreated:
    """Mint, store and audit a key; returns it with its secret, once."""
    expires_at = body.expiry()
    if expires_at is not None and expires_at <= utcnow():
        raise HTTPProblem(422, "Invalid request", "expiry lies in the past")
    key = mint_key()
    async with identity.auth.db.session() as session:
        key_id = await store.create_api_key(
            session,
            user_id=owner_id,
            name=body.name,
            prefix=key.prefix,
            digest=key.digest,
            scopes=body.scopes,
            allowed_assistants=body.allowed_assistants,
            expires_at=expires_at,
            rate_limit=body.rate_limit,
            created_by=actor.id,
        )
        await identity.auditor.record(
            "keys",
            "created",
            target_type="api_key",
            target_id=key_id,
            actor=actor,
            owner=owner_id,
            scopes=",".join(body.scopes),
            by_admin=issued_by_admin,
        )
        row = await store.get_key(session, key_id)
    assert row is not None
    return KeyCreated(**row.__dict__, key=key.secret)


async def revoke(identity: Identity, key_id: str, *, actor: Actor, owner_id: str | None) -> KeyRead:
    """Revoke a key, audit it and make every replica forget it at once."""
    async with identity.auth.db.session() as session:
        row = await store.revoke_key(session, key_id, user_id=owner_id)
        if row is None:
            raise HTTPProblem(404, "Not found", "no such live API key")
        await identity.auditor.record(
            "keys", "revoked", target_type="api_key", target_id=key_id, actor=actor, owner=row.user_id
        )
    await identity.auth.announce(identity.bus, key_id=key_id)
    return key_read(row)


def build_router() -> APIRouter:
    """Routes of `/api/keys`."""
    router = APIRouter(prefix="/api/keys", tags=["api keys"])

    @router.get("", response_model=list[KeyRead], summary="My API keys")
    async def list_mine(request: Request, principal: Principal = Depends(current_principal)) -> list[KeyRead]:
        identity: Identity = request.app.state.identity
        async with identity.auth.db.session() as session:
            rows = await store.list_keys(session, user_id=principal.actor.id)
        return [key_read(r) for r in rows]

    @router.post("", response_model=KeyCreated, status_code=201, summary="Create an API key (shown once)")
    async def create(
        body: KeyCreate, request: Request, principal: Principal = Depends(current_principal)
    ) -> KeyCreated:
        identity: Identity = request.app.state.identity
        # A key never gets more than the credential that creates it.
        if ALL not in principal.scopes and not all(grants(principal.scopes, s) for s in body.scopes if s != ALL):
            raise HTTPProblem(403, "Forbidden", "a key cannot grant scopes its creator's credential lacks")
        if ALL not in principal.scopes and ALL in body.scopes:
            raise HTTPProblem(403, "Forbidden", "a key cannot grant scopes its creator's credential lacks")
        if principal.allowed_assistants and not set(body.allowed_assistants or ["*"]) <= set(
            principal.allowed_assistants
        ):
            raise HTTPProblem(403, "Forbidden", "a key cannot reach assistants its creator's credential cannot")
        return await issue_key(
            identity, owner_id=principal.actor.id, body=body, actor=principal.actor, issued_by_admin=False
        )

    @router.delete("/{key_id}", response_model=KeyRead, summary="Revoke one of my API keys")
    async def revoke_mine(key_id: str, request: Request, principal: Principal = Depends(current_principal)) -> KeyRead:
        return await revoke(request.app.state.identity, key_id, actor=principal.actor, owner_id=principal.actor.id)

    return router
