"""Browser sessions in Redis: an opaque cookie, an idle timeout refreshed on use, a CSRF token each."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import orjson
from pydantic import BaseModel
from redis.asyncio import Redis

from schleuse_common.auth import Actor

PREFIX = "gw:sess:"
USER_PREFIX = "gw:user-sess:"


class Session(BaseModel):
    """What a session holds; the cookie carries only a random id, Redis only its hash."""

    actor: Actor
    csrf: str
    method: str  # local | oidc
    created: float
    expires: float  # absolute end, regardless of activity
    id_token: str | None = None
    refresh_token: str | None = None


def _key(session_id: str) -> str:
    return PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class SessionStore:
    """Sessions expire after `idle_seconds` without use and after `max_seconds` in any case."""

    redis: Redis
    idle_seconds: float
    max_seconds: float

    async def create(
        self, actor: Actor, method: str, *, id_token: str | None = None, refresh_token: str | None = None
    ) -> tuple[str, Session]:
        """A new session; returns the cookie value (shown to the browser only) and the session."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(
            actor=actor,
            csrf=secrets.token_urlsafe(32),
            method=method,
            created=now,
            expires=now + self.max_seconds,
            id_token=id_token,
            refresh_token=refresh_token,
        )
        await self._write(session_id, session)
        return session_id, session

    async def _write(self, session_id: str, session: Session) -> None:
        key = _key(session_id)
        idle_ms = max(1, int(self.idle_seconds * 1000))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(key, session.model_dump_json(), px=idle_ms)
            pipe.sadd(USER_PREFIX + session.actor.id, key)
            pipe.expire(USER_PREFIX + session.actor.id, int(self.max_seconds) + 60)
            await pipe.execute()

    async def touch(self, session_id: str) -> Session | None:
        """The live session behind a cookie, its idle timer restarted (one round trip); None when gone."""
        key = _key(session_id)
        idle_ms = max(1, int(self.idle_seconds * 1000))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.pexpire(key, idle_ms, xx=True)
            raw, _ = await pipe.execute()
        if raw is None:
            return None
        session = Session.model_validate(orjson.loads(raw))
        if session.expires <= time.time():
            await self.redis.delete(key)
            return None
        return session

    async def rotate(self, session_id: str, session: Session, actor: Actor | None = None) -> tuple[str, Session]:
        """Replace a session by a new id and CSRF token (refresh), optionally with a fresh actor."""
        await self.delete(session_id, session.actor.id)
        new_id = secrets.token_urlsafe(32)
        fresh = session.model_copy(update={"csrf": secrets.token_urlsafe(32), "actor": actor or session.actor})
        await self._write(new_id, fresh)
        return new_id, fresh

    async def replace(self, session_id: str, session: Session) -> None:
        """Store changed session data under the same id."""
        await self._write(session_id, session)

    async def delete(self, session_id: str, user_id: str | None = None) -> None:
        """End one session."""
        key = _key(session_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(key)
            if user_id:
                pipe.srem(USER_PREFIX + user_id, key)
            await pipe.execute()

    async def end_all(self, user_id: str) -> int:
        """End every session of a user (deactivation, role change); returns how many were live."""
        keys = await self.redis.smembers(USER_PREFIX + user_id)
        if not keys:
            return 0
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(*keys)
            pipe.delete(USER_PREFIX + user_id)
            deleted, _ = await pipe.execute()
        return int(deleted)
