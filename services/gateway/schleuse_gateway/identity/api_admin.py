"""`/api/admin`: users, roles, departments and keys, for admins only; every change audited."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, field_validator

from schleuse_common.auth import Actor
from schleuse_common.ids import utcnow
from schleuse_gateway import store
from schleuse_gateway.deps import HTTPProblem, require_roles
from schleuse_gateway.domain.claims import ROLES
from schleuse_gateway.domain.passwords import WeakPassword, random_password
from schleuse_gateway.identity.api_keys import KeyCreate, KeyCreated, KeyRead, issue_key, key_read, revoke
from schleuse_gateway.identity.wiring import Identity

admin_only = require_roles("admin")
DEPARTMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,127}$"


def _roles(value: list[str]) -> list[str]:
    unknown = [r for r in value if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown role {unknown[0]!r}; roles are {', '.join(ROLES)}")
    return sorted(set(value))


class UserRead(BaseModel):
    """A user as admins see it: pseudonymous id; names only where kept."""

    id: str
    kind: str
    roles: list[str]
    department: str | None
    active: bool
    login_name: str | None
    display_name: str | None
    email: str | None
    locked: bool
    failed_logins: int
    last_login_at: datetime | None
    created_at: datetime


class UserCreate(BaseModel):
    """A local account. Without `password` a random one is generated and shown once."""

    login_name: str = Field(min_length=1, max_length=128, pattern=r"^[^\s]+$")
    password: str | None = Field(default=None, max_length=1024)
    roles: list[str] = Field(default_factory=lambda: ["user"], min_length=1)
    department: str | None = Field(default=None, pattern=DEPARTMENT_PATTERN)
    display_name: str | None = Field(default=None, max_length=200)

    @field_validator("roles")
    @classmethod
    def _check_roles(cls, value: list[str]) -> list[str]:
        return _roles(value)


class UserCreated(BaseModel):
    user: UserRead
    password: str | None = Field(default=None, description="the generated password, shown once")


class UserUpdate(BaseModel):
    roles: list[str] | None = Field(default=None, min_length=1)
    department: str | None = Field(default=None, pattern=DEPARTMENT_PATTERN)
    clear_department: bool = False
    active: bool | None = None
    display_name: str | None = Field(default=None, max_length=200)

    @field_validator("roles")
    @classmethod
    def _check_roles(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _roles(value)


class PasswordReset(BaseModel):
    password: str = Field(description="the new random password, shown once")


class DepartmentCreate(BaseModel):
    id: str = Field(pattern=DEPARTMENT_PATTERN)
    name: str | None = Field(default=None, max_length=200)


class DepartmentRead(BaseModel):
    id: str
    name: str
    members: int
    created_at: datetime


class AdminKeyCreate(KeyCreate):
    """A key for an existing user (`user_id`), or for a new integration account of a department."""

    user_id: str | None = None
    department: str | None = Field(default=None, pattern=DEPARTMENT_PATTERN)
    roles: list[str] = Field(default_factory=lambda: ["user"], min_length=1)

    @field_validator("roles")
    @classmethod
    def _check_roles(cls, value: list[str]) -> list[str]:
        return _roles(value)


def user_read(user: store.UserRow) -> UserRead:
    """A stored user as the admin API shows it."""
    locked = user.locked_until is not None and user.locked_until > utcnow()
    values = {k: v for k, v in user.__dict__.items() if k in UserRead.model_fields}
    return UserRead(**values, locked=locked)


def _identity(request: Request) -> Identity:
    identity: Identity = request.app.state.identity
    return identity


async def _changed(identity: Identity, user_id: str) -> None:
    """A user's roles, department or state changed: end their sessions and drop cached credentials."""
    await identity.sessions.end_all(user_id)
    await identity.auth.announce(identity.bus, user_id=user_id)


def build_router() -> APIRouter:
    """Routes of `/api/admin`."""
    router = APIRouter(prefix="/api/admin", tags=["admin"])

    @router.get("/roles", response_model=list[str], summary="The roles a person can hold")
    async def roles(actor: Actor = Depends(admin_only)) -> list[str]:
        return list(ROLES)

    # -- users ---------------------------------------------------------------------------

    @router.get("/users", response_model=list[UserRead], summary="Users")
    async def list_users(
        request: Request,
        department: str | None = None,
        role: str | None = None,
        limit: int = 100,
        offset: int = 0,
        actor: Actor = Depends(admin_only),
    ) -> list[UserRead]:
        async with _identity(request).auth.db.session() as session:
            rows = await store.list_users(
                session, department=department, role=role, limit=max(1, min(limit, 500)), offset=max(0, offset)
            )
        return [user_read(u) for u in rows]

    @router.post("/users", response_model=UserCreated, status_code=201, summary="Create a local account")
    async def create_user(body: UserCreate, request: Request, actor: Actor = Depends(admin_only)) -> UserCreated:
        identity = _identity(request)
        try:
            user, generated = await identity.accounts.create(
                login_name=body.login_name,
                password=body.password,
                roles=body.roles,
                department=body.department,
                display_name=body.display_name,
                actor=actor,
            )
        except WeakPassword as e:
            raise HTTPProblem(422, "Weak password", str(e)) from e
        except FileExistsError as e:
            raise HTTPProblem(409, "Conflict", "this login name is taken") from e
        return UserCreated(user=user_read(user), password=generated)

    @router.get("/users/{user_id}", response_model=UserRead, summary="One user")
    async def get_user(user_id: str, request: Request, actor: Actor = Depends(admin_only)) -> UserRead:
        async with _identity(request).auth.db.session() as session:
            user = await store.get_user(session, user_id)
        if user is None:
            raise HTTPProblem(404, "Not found", "no such user")
        return user_read(user)

    @router.patch("/users/{user_id}", response_model=UserRead, summary="Change roles, department, state")
    async def update_user(
        user_id: str, body: UserUpdate, request: Request, actor: Actor = Depends(admin_only)
    ) -> UserRead:
        identity = _identity(request)
        if user_id == actor.id and (body.active is False or (body.roles is not None and "admin" not in body.roles)):
            raise HTTPProblem(409, "Conflict", "admins cannot remove their own admin role or disable themselves")
        values: dict[str, object] = body.model_dump(exclude_none=True, exclude={"clear_department"})
        if body.clear_department:
            values["department"] = None
        async with identity.auth.db.session() as session:
            if body.department is not None and not await store.department_exists(session, body.department):
                raise HTTPProblem(422, "Unknown department", "create the department first")
            if await store.get_user(session, user_id) is None:
                raise HTTPProblem(404, "Not found", "no such user")
            if values:
                await store.update_user(session, user_id, **values)
            if body.active is False:
                await store.revoke_keys_of(session, user_id)
            changed = {k: (",".join(v) if isinstance(v, list) else v) for k, v in values.items()}
            changed.pop("display_name", None)  # a name is not for the audit log
            await identity.auditor.record(
                "users",
                "updated",
                target_type="user",
                target_id=user_id,
                actor=actor,
                **changed,  # type: ignore[arg-type]
            )
            user = await store.get_user(session, user_id)
        await _changed(identity, user_id)
        assert user is not None
        return user_read(user)

    @router.post("/users/{user_id}/unlock", response_model=UserRead, summary="Lift a lockout")
    async def unlock(user_id: str, request: Request, actor: Actor = Depends(admin_only)) -> UserRead:
        identity = _identity(request)
        async with identity.auth.db.session() as session:
            if not await store.update_user(session, user_id, failed_logins=0, locked_until=None):
                raise HTTPProblem(404, "Not found", "no such user")
            await identity.auditor.record("users", "unlocked", target_type="user", target_id=user_id, actor=actor)
            user = await store.get_user(session, user_id)
        assert user is not None
        return user_read(user)

    @router.post("/users/{user_id}/password", response_model=PasswordReset, summary="Reset a local password")
    async def reset_password(user_id: str, request: Request, actor: Actor = Depends(admin_only)) -> PasswordReset:
        identity = _identity(request)
        async with identity.auth.db.session() as session:
            user = await store.get_user(session, user_id)
        if user is None:
            raise HTTPProblem(404, "Not found", "no such user")
        if user.kind != "local":
            raise HTTPProblem(409, "Conflict", "only local accounts have passwords here")
        password = random_password()
        await identity.accounts.set_password(user_id, password, actor=actor, action="password_reset")
        await identity.sessions.end_all(user_id)
        return PasswordReset(password=password)

    # -- departments ---------------------------------------------------------------------

    @router.get("/departments", response_model=list[DepartmentRead], summary="Departments")
    async def list_departments(request: Request, actor: Actor = Depends(admin_only)) -> list[DepartmentRead]:
        async with _identity(request).auth.db.session() as session:
            return [DepartmentRead(**d) for d in await store.list_departments(session)]

    @router.post("/departments", response_model=DepartmentRead, status_code=201, summary="Create a department")
    async def create_department(
        body: DepartmentCreate, request: Request, actor: Actor = Depends(admin_only)
    ) -> DepartmentRead:
        identity = _identity(request)
        async with identity.auth.db.session() as session:
            if not await store.ensure_department(session, body.id, body.name):
                raise HTTPProblem(409, "Conflict", "department exists")
            await identity.auditor.record(
                "departments", "created", target_type="department", target_id=body.id, actor=actor
            )
        return DepartmentRead(id=body.id, name=body.name or body.id, members=0, created_at=utcnow())

    @router.delete("/departments/{department_id}", status_code=204, summary="Delete a department")
    async def delete_department(department_id: str, request: Request, actor: Actor = Depends(admin_only)) -> None:
        identity = _identity(request)
        async with identity.auth.db.session() as session:
            members = [u.id for u in await store.list_users(session, department=department_id, limit=10_000)]
            if not await store.delete_department(session, department_id):
                raise HTTPProblem(404, "Not found", "no such department")
            await identity.auditor.record(
                "departments",
                "deleted",
                target_type="department",
                target_id=department_id,
                actor=actor,
                members=len(members),
            )
        for user_id in members:
            await _changed(identity, user_id)

    # -- keys ----------------------------------------------------------------------------

    @router.get("/keys", response_model=list[KeyRead], summary="All API keys")
    async def list_keys(
        request: Request, user_id: str | None = None, actor: Actor = Depends(admin_only)
    ) -> list[KeyRead]:
        async with _identity(request).auth.db.session() as session:
            return [key_read(k) for k in await store.list_keys(session, user_id=user_id)]

    @router.post("/keys", response_model=KeyCreated, status_code=201, summary="Issue a key for a user or integration")
    async def create_key(body: AdminKeyCreate, request: Request, actor: Actor = Depends(admin_only)) -> KeyCreated:
        identity = _identity(request)
        async with identity.auth.db.session() as session:
            if body.user_id is not None:
                if await store.get_user(session, body.user_id) is None:
                    raise HTTPProblem(404, "Not found", "no such user")
                owner_id = body.user_id
            else:
                if body.department is not None:
                    await store.ensure_department(session, body.department)
                owner_id = await store.create_user(
                    session,
                    subject_hash=identity.auth.subject_hash("integration", random_password()),
                    roles=body.roles,
                    department=body.department,
                    kind="service",
                    display_name=body.name,
                )
                await identity.auditor.record(
                    "users", "created", target_type="user", target_id=owner_id, actor=actor, kind="service"
                )
        return await issue_key(identity, owner_id=owner_id, body=body, actor=actor, issued_by_admin=True)

    @router.delete("/keys/{key_id}", response_model=KeyRead, summary="Revoke any API key")
    async def revoke_key(key_id: str, request: Request, actor: Actor = Depends(admin_only)) -> KeyRead:
        return await revoke(_identity(request), key_id, actor=actor, owner_id=None)

    return router
