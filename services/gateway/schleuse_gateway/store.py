"""The gateway schema: pseudonymous users, local credentials, departments and API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ARRAY, Boolean, Column, DateTime, Integer, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from schleuse_common.ids import new_id, utcnow

metadata = MetaData(schema="gateway")

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("subject_hash", String(64), nullable=False, unique=True),
    Column("roles", ARRAY(String(32)), nullable=False),
    Column("department", String(128)),
    Column("active", Boolean, nullable=False, server_default=sa.true()),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("kind", String(16), nullable=False, server_default="local"),  # local | oidc | service
    Column("login_name", String(128)),  # local accounts only: what the person types to log in
    Column("display_name", String(200)),
    Column("email", String(320)),
    Column("password_hash", String(256)),
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", DateTime(timezone=True)),
    Column("last_login_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(64), sa.ForeignKey("gateway.users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("scopes", ARRAY(String(32)), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("allowed_assistants", ARRAY(String(64)), nullable=False, server_default="{}"),
    Column("rate_limit", Integer),
    Column("created_by", String(64)),
)

departments = Table(
    "departments",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)


@dataclass(frozen=True)
class KeyOwner:
    """Who an API key acts for, and what the key may do."""

    key_id: str
    user_id: str
    roles: list[str]
    department: str | None
    scopes: list[str]
    allowed_assistants: list[str]
    rate_limit: int | None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class UserRow:
    """A user as stored (without the password hash unless asked for)."""

    id: str
    kind: str
    roles: list[str]
    department: str | None
    active: bool
    login_name: str | None
    display_name: str | None
    email: str | None
    failed_logins: int
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime
    password_hash: str | None = None


@dataclass(frozen=True)
class KeyRow:
    """An API key as listed: never the secret, only its prefix."""

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


_USER_COLS = [c for c in users.c if c.name not in ("subject_hash", "updated_at")]
_KEY_COLS = [c for c in api_keys.c if c.name != "digest"]


def _user(row: Any) -> UserRow:
    m = row._mapping
    return UserRow(**{c.name: m[c.name] for c in _USER_COLS if c.name != "roles"}, roles=list(m["roles"]))


def _key(row: Any) -> KeyRow:
    m = row._mapping
    values = {c.name: m[c.name] for c in _KEY_COLS}
    values["scopes"] = list(values["scopes"])
    values["allowed_assistants"] = list(values["allowed_assistants"])
    return KeyRow(**values)


# -- users --------------------------------------------------------------------------------


async def create_user(
    session: AsyncSession,
    *,
    subject_hash: str,
    roles: list[str],
    department: str | None,
    kind: str = "local",
    login_name: str | None = None,
    display_name: str | None = None,
    email: str | None = None,
    password_hash: str | None = None,
) -> str:
    """Insert a user and return its pseudonymous id."""
    user_id = new_id()
    await session.execute(
        users.insert().values(
            id=user_id,
            subject_hash=subject_hash,
            roles=roles,
            department=department,
            kind=kind,
            login_name=login_name,
            display_name=display_name,
            email=email,
            password_hash=password_hash,
        )
    )
    return user_id


async def user_by_subject(session: AsyncSession, subject_hash: str, *, for_update: bool = False) -> UserRow | None:
    """The user with this keyed subject hash, including the password hash."""
    stmt = sa.select(*_USER_COLS).where(users.c.subject_hash == subject_hash)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).first()
    return _user(row) if row else None


async def get_user(session: AsyncSession, user_id: str) -> UserRow | None:
    """One user by id."""
    row = (await session.execute(sa.select(*_USER_COLS).where(users.c.id == user_id))).first()
    return _user(row) if row else None


async def list_users(
    session: AsyncSession,
    *,
    department: str | None = None,
    role: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[UserRow]:
    """Users, newest first, optionally of one department or role."""
    stmt = sa.select(*_USER_COLS).order_by(users.c.created_at.desc(), users.c.id).limit(limit).offset(offset)
    if department is not None:
        stmt = stmt.where(users.c.department == department)
    if role is not None:
        stmt = stmt.where(users.c.roles.any(role))
    return [_user(r) for r in (await session.execute(stmt)).all()]


async def update_user(session: AsyncSession, user_id: str, **values: Any) -> bool:
    """Change columns of a user; False when there is no such user."""
    result = await session.execute(
        users.update().where(users.c.id == user_id).values(**values, updated_at=utcnow()).returning(users.c.id)
    )
    return result.first() is not None


async def upsert_oidc_user(
    session: AsyncSession,
    *,
    subject_hash: str,
    roles: list[str],
    department: str | None,
    display_name: str | None,
    email: str | None,
    claims_decide_roles: bool,
) -> UserRow:
    """Create the user on first login; later logins refresh department (and roles when claims decide them)."""
    user_id = new_id()
    stmt = insert(users).values(
        id=user_id,
        subject_hash=subject_hash,
        roles=roles,
        department=department,
        kind="oidc",
        display_name=display_name,
        email=email,
        last_login_at=utcnow(),
    )
    update: dict[str, Any] = {
        "department": stmt.excluded.department,
        "display_name": stmt.excluded.display_name,
        "email": stmt.excluded.email,
        "last_login_at": stmt.excluded.last_login_at,
    }
    if claims_decide_roles:
        update["roles"] = stmt.excluded.roles
    stmt = stmt.on_conflict_do_update(index_elements=[users.c.subject_hash], set_=update).returning(*_USER_COLS)
    return _user((await session.execute(stmt)).one())


# -- departments --------------------------------------------------------------------------


async def list_departments(session: AsyncSession) -> list[dict[str, Any]]:
    """Every department with its member count."""
    members = sa.func.count(users.c.id)
    stmt = (
        sa.select(departments.c.id, departments.c.name, departments.c.created_at, members.label("members"))
        .select_from(departments.outerjoin(users, users.c.department == departments.c.id))
        .group_by(departments.c.id)
        .order_by(departments.c.id)
    )
    return [dict(r._mapping) for r in (await session.execute(stmt)).all()]


async def ensure_department(session: AsyncSession, department_id: str, name: str | None = None) -> bool:
    """Create a department unless it exists; True when it was created."""
    stmt = insert(departments).values(id=department_id, name=name or department_id).on_conflict_do_nothing()
    return bool((await session.execute(stmt.returning(departments.c.id))).first())


async def department_exists(session: AsyncSession, department_id: str) -> bool:
    """True when the department is known."""
    stmt = sa.select(departments.c.id).where(departments.c.id == department_id)
    return (await session.execute(stmt)).first() is not None


async def delete_department(session: AsyncSession, department_id: str) -> bool:
    """Remove a department; its members keep their records but lose the membership."""
    await session.execute(users.update().where(users.c.department == department_id).values(department=None))
    result = await session.execute(departments.delete().where(departments.c.id == department_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


# -- API keys -----------------------------------------------------------------------------


async def create_api_key(
    session: AsyncSession,
    *,
    user_id: str,
    name: str,
    prefix: str,
    digest: str,
    scopes: list[str],
    allowed_assistants: list[str] | None = None,
    expires_at: datetime | None = None,
    rate_limit: int | None = None,
    created_by: str | None = None,
) -> str:
    """Store a key's digest (never the key) and return its id."""
    key_id = new_id()
    await session.execute(
        api_keys.insert().values(
            id=key_id,
            user_id=user_id,
            name=name,
            prefix=prefix,
            digest=digest,
            scopes=scopes,
            allowed_assistants=allowed_assistants or [],
            expires_at=expires_at,
            rate_limit=rate_limit,
            created_by=created_by,
        )
    )
    return key_id


async def list_keys(session: AsyncSession, *, user_id: str | None = None, include_revoked: bool = True) -> list[KeyRow]:
    """API keys (of one user, or all), newest first."""
    stmt = sa.select(*_KEY_COLS).order_by(api_keys.c.created_at.desc(), api_keys.c.id)
    if user_id is not None:
        stmt = stmt.where(api_keys.c.user_id == user_id)
    if not include_revoked:
        stmt = stmt.where(api_keys.c.revoked_at.is_(None))
    return [_key(r) for r in (await session.execute(stmt)).all()]


async def get_key(session: AsyncSession, key_id: str) -> KeyRow | None:
    """One key by id."""
    row = (await session.execute(sa.select(*_KEY_COLS).where(api_keys.c.id == key_id))).first()
    return _key(row) if row else None


async def revoke_key(session: AsyncSession, key_id: str, *, user_id: str | None = None) -> KeyRow | None:
    """Revoke a key (only the owner's when `user_id` is given); None when there is no such live key."""
    stmt = api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
    if user_id is not None:
        stmt = stmt.where(api_keys.c.user_id == user_id)
    row = (await session.execute(stmt.values(revoked_at=utcnow()).returning(*_KEY_COLS))).first()
    return _key(row) if row else None


async def revoke_keys_of(session: AsyncSession, user_id: str) -> list[str]:
    """Revoke every live key of a user (deactivation); returns their ids."""
    stmt = (
        api_keys.update()
        .where(api_keys.c.user_id == user_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .returning(api_keys.c.id)
    )
    return [r.id for r in (await session.execute(stmt)).all()]


async def owner_of_key(session: AsyncSession, digest: str, *, now: datetime | None = None) -> KeyOwner | None:
    """The active owner of a key digest, or None if unknown, revoked, expired or the user is inactive."""
    now = now or utcnow()
    k, u = api_keys.c, users.c
    row = (
        await session.execute(
            sa.select(
                k.id, k.user_id, k.scopes, k.allowed_assistants, k.rate_limit, k.expires_at, u.roles, u.department
            )
            .join(users, users.c.id == k.user_id)
            .where(
                k.digest == digest,
                k.revoked_at.is_(None),
                sa.or_(k.expires_at.is_(None), k.expires_at > now),
                u.active.is_(True),
            )
        )
    ).first()
    if row is None:
        return None
    return KeyOwner(
        row.id,
        row.user_id,
        list(row.roles),
        row.department,
        list(row.scopes),
        list(row.allowed_assistants),
        row.rate_limit,
        row.expires_at,
    )


async def touch_key(session: AsyncSession, key_id: str) -> None:
    """Record when a key was last used."""
    await session.execute(api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=utcnow()))
