"""Local accounts: login with lockout, first admin, password changes and resets."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from schleuse_common.auth import Actor
from schleuse_common.db import Database
from schleuse_common.ids import utcnow
from schleuse_gateway import store
from schleuse_gateway.auth import Authenticator
from schleuse_gateway.domain.passwords import (
    Lockout,
    check_policy,
    hash_password,
    needs_rehash,
    random_password,
    verify_password,
)
from schleuse_gateway.identity.audit import Auditor

LOCAL_ISSUER = "local"


class LoginRefused(Exception):
    """Wrong name or password, or a locked or disabled account; the message is safe to show."""

    def __init__(self, message: str, *, status: int = 401, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


def normalise_login(name: str) -> str:
    """Login names compare case-insensitively and without surrounding blanks."""
    return name.strip().casefold()


@dataclass
class Accounts:
    """Local credentials; the pseudonym of a local user is a keyed hash of `local` and their login name."""

    db: Database
    auth: Authenticator
    auditor: Auditor
    lockout: Lockout
    min_length: int = 12

    def subject_hash(self, login_name: str) -> str:
        """The pseudonymous key of a local login name."""
        return self.auth.subject_hash(LOCAL_ISSUER, normalise_login(login_name))

    async def login(self, login_name: str, password: str) -> store.UserRow:
        """Check a password; five failures in a row lock the account for the lockout duration."""
        subject = self.subject_hash(login_name)
        async with self.db.session() as session:
            user = await store.user_by_subject(session, subject)
        now = utcnow()
        if user is not None and self.lockout.is_locked(user.locked_until, now):
            await self.auditor.record(
                "identity", "login", target_type="user", target_id=user.id, actor=None, outcome="locked", method="local"
            )
            assert user.locked_until is not None
            wait = (user.locked_until - now).total_seconds()
            raise LoginRefused("account locked after repeated failures; try later", status=423, retry_after=wait)
        ok = await asyncio.to_thread(verify_password, user.password_hash if user else None, password)
        if user is None or not ok or not user.active:
            if user is not None and not ok:
                await self._failed(user.id)
            else:
                await self.auditor.record(
                    "identity",
                    "login",
                    target_type="user",
                    target_id=None,
                    actor=None,
                    outcome="failed",
                    method="local",
                )
            raise LoginRefused("wrong login name or password")
        async with self.db.session() as session:
            values: dict[str, object] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
            if user.password_hash and needs_rehash(user.password_hash):
                values["password_hash"] = await asyncio.to_thread(hash_password, password)
            await store.update_user(session, user.id, **values)
            await self.auditor.record(
                "identity",
                "login",
                target_type="user",
                target_id=user.id,
                actor=self.auth.actor_of(user),
                method="local",
            )
        return user

    async def _failed(self, user_id: str) -> None:
        async with self.db.session() as session:
            user = await store.get_user(session, user_id)
            assert user is not None
            failures, locked_until = self.lockout.after_failure(user.failed_logins, utcnow())
            await store.update_user(session, user_id, failed_logins=failures, locked_until=locked_until)
            await self.auditor.record(
                "identity",
                "login",
                target_type="user",
                target_id=user_id,
                actor=None,
                outcome="failed",
                method="local",
                failures=failures,
            )
            if locked_until is not None:
                await self.auditor.record(
                    "identity", "lockout", target_type="user", target_id=user_id, actor=None, failures=failures
                )

    async def create(
        self,
        *,
        login_name: str,
        password: str | None,
        roles: list[str],
        department: str | None,
        display_name: str | None,
        actor: Actor | None,
    ) -> tuple[store.UserRow, str | None]:
        """A new local account; returns it and the generated password (shown once) when none was given."""
        generated = None
        if password is None:
            password = generated = random_password()
        check_policy(password, self.min_length)
        digest = await asyncio.to_thread(hash_password, password)
        async with self.db.session() as session:
            if await store.user_by_subject(session, self.subject_hash(login_name)) is not None:
                raise FileExistsError("login name taken")
            if department is not None:
                await store.ensure_department(session, department)
            user_id = await store.create_user(
                session,
                subject_hash=self.subject_hash(login_name),
                roles=roles,
                department=department,
                kind="local",
                login_name=normalise_login(login_name),
                display_name=display_name,
                password_hash=digest,
            )
            await self.auditor.record(
                "users", "created", target_type="user", target_id=user_id, actor=actor, kind="local"
            )
            user = await store.get_user(session, user_id)
        assert user is not None
        return user, generated

    async def set_password(self, user_id: str, password: str, *, actor: Actor | None, action: str) -> None:
        """Replace a local user's password (own change or admin reset) and lift any lock."""
        check_policy(password, self.min_length)
        digest = await asyncio.to_thread(hash_password, password)
        async with self.db.session() as session:
            await store.update_user(session, user_id, password_hash=digest, failed_logins=0, locked_until=None)
            await self.auditor.record("users", action, target_type="user", target_id=user_id, actor=actor)


def lockout_of(threshold: int, seconds: float) -> Lockout:
    """The lockout rule from settings."""
    return Lockout(threshold=threshold, duration=timedelta(seconds=seconds))
