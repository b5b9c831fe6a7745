"""The dlp schema: encrypted placeholder mappings per thread, policies, data keys."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, DateTime, LargeBinary, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import JSONB, insert

from schleuse_common.crypto import DataKeyring, data_keys_table, decrypt, encrypt
from schleuse_common.db import Database
from schleuse_dlp.domain.policy import Policy, PolicyBook
from schleuse_dlp.domain.redaction import ThreadMapping, normalize_value

metadata = MetaData()
data_keys = data_keys_table(metadata)

placeholders = Table(
    "placeholders",
    metadata,
    Column("thread_id", String(128), primary_key=True),
    Column("placeholder", String(48), primary_key=True),
    Column("entity_type", String(32), nullable=False),
    # keyed hash of the normalised value under the thread's data key: "same value -> same placeholder"
    # across replicas without storing the value in clear; shredding the key makes it meaningless
    Column("value_hmac", String(64), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("value_enc", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    sa.UniqueConstraint("thread_id", "entity_type", "value_hmac", name="uq_placeholders_value"),
)

policies = Table(
    "policies",
    metadata,
    Column("scope", String(16), primary_key=True),
    Column("scope_id", String(128), primary_key=True),  # "" for the default policy
    Column("body", JSONB, nullable=False),
    Column("updated_by", String(128)),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

HASH_KEY_OWNER = "dlp:hash-action"


def thread_owner(thread_id: str) -> str:
    """The data-key owner of a thread's mapping (shredded by dlp.forget)."""
    return f"thread:{thread_id}"


class MappingConflict(Exception):
    """Another replica assigned one of our new placeholders (or values) first; reload and retry."""


class MappingStore:
    """Thread mappings: encrypted rows in Postgres, decrypted mappings cached in memory for a short time."""

    def __init__(self, db: Database, keyring: DataKeyring, cache_size: int, cache_seconds: float) -> None:
        self._db = db
        self._keyring = keyring
        self._cache: OrderedDict[str, tuple[float, ThreadMapping]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_seconds = cache_seconds

    def cached(self, thread_id: str) -> ThreadMapping | None:
        hit = self._cache.get(thread_id)
        if hit is None or time.monotonic() - hit[0] > self._cache_seconds:
            self._cache.pop(thread_id, None)
            return None
        self._cache.move_to_end(thread_id)
        return hit[1]

    def _remember(self, thread_id: str, mapping: ThreadMapping) -> None:
        self._cache[thread_id] = (time.monotonic(), mapping)
        self._cache.move_to_end(thread_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def get(self, thread_id: str, *, fresh: bool = False) -> ThreadMapping:
        """The thread's mapping (from cache unless `fresh`)."""
        if not fresh:
            hit = self.cached(thread_id)
            if hit is not None:
                return hit
        async with self._db.session() as s:
            rows = (
                await s.execute(
                    sa.select(
                        placeholders.c.placeholder,
                        placeholders.c.entity_type,
                        placeholders.c.key_id,
                        placeholders.c.value_enc,
                    ).where(placeholders.c.thread_id == thread_id)
                )
            ).all()
            entries: dict[str, tuple[str, str]] = {}
            for row in rows:
                key = await self._keyring.by_id(s, row.key_id)
                if key is None:  # shredded
                    continue
                value = decrypt(key, row.value_enc, _aad(thread_id, row.placeholder)).decode()
                entries[row.placeholder] = (row.entity_type, value)
        mapping = ThreadMapping.from_entries(entries)
        self._remember(thread_id, mapping)
        return mapping

    async def add(self, thread_id: str, new: dict[str, tuple[str, str]]) -> None:
        """Persist new placeholders; raises MappingConflict if another writer took a placeholder or value."""
        if not new:
            return
        async with self._db.session() as s:
            dk = await self._keyring.for_owner(s, thread_owner(thread_id))
            rows: list[dict[str, Any]] = []
            for placeholder, (entity_type, value) in new.items():
                digest = hmac.new(dk.key, normalize_value(entity_type, value).encode(), hashlib.sha256).hexdigest()
                rows.append(
                    {
                        "thread_id": thread_id,
                        "placeholder": placeholder,
                        "entity_type": entity_type,
                        "value_hmac": digest,
                        "key_id": dk.key_id,
                        "value_enc": encrypt(dk.key, value.encode(), _aad(thread_id, placeholder)),
                    }
                )
            stmt = insert(placeholders).values(rows).on_conflict_do_nothing().returning(placeholders.c.placeholder)
            written = (await s.execute(stmt)).scalars().all()
            if len(written) != len(rows):
                raise MappingConflict()  # the session rolls back: nothing of this batch is kept

    async def forget(self, thread_id: str) -> int:
        """Delete a thread's mapping and shred its data key."""
        self._cache.pop(thread_id, None)
        async with self._db.session() as s:
            result = await s.execute(sa.delete(placeholders).where(placeholders.c.thread_id == thread_id))
            await self._keyring.shred(s, thread_owner(thread_id))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def evict(self, thread_id: str) -> None:
        self._cache.pop(thread_id, None)

    async def hash_key(self) -> bytes:
        """The stable key of the `hash` action (a data key of its own, so it can be rotated or shredded)."""
        async with self._db.session() as s:
            return (await self._keyring.for_owner(s, HASH_KEY_OWNER)).key


def _aad(thread_id: str, placeholder: str) -> bytes:
    return f"dlp:{thread_id}:{placeholder}".encode()


class PolicyStore:
    """Policies in the dlp schema, cached as a PolicyBook for a few seconds."""

    def __init__(self, db: Database, cache_seconds: float) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._book: PolicyBook | None = None
        self._loaded_at = 0.0

    def invalidate(self) -> None:
        """Reload on next use (another replica changed a policy)."""
        self._book = None

    async def book(self, *, fresh: bool = False) -> PolicyBook:
        """The current policies (cached unless `fresh`)."""
        if fresh or self._book is None or time.monotonic() - self._loaded_at > self._cache_seconds:
            async with self._db.session() as s:
                rows = (await s.execute(sa.select(policies.c.body))).scalars().all()
            self._book = PolicyBook(Policy.model_validate(body) for body in rows)
            self._loaded_at = time.monotonic()
        return self._book

    async def put(self, policy: Policy, updated_by: str | None) -> None:
        """Create or replace the policy of a scope."""
        body = policy.model_dump(mode="json")
        stmt = insert(policies).values(
            scope=policy.scope, scope_id=policy.scope_id or "", body=body, updated_by=updated_by
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["scope", "scope_id"],
            set_={"body": body, "updated_by": updated_by, "updated_at": func.now()},
        )
        async with self._db.session() as s:
            await s.execute(stmt)
        self._book = None

    async def delete(self, scope: str, scope_id: str | None) -> int:
        """Remove a scope's policy (the next more general one applies)."""
        async with self._db.session() as s:
            result = await s.execute(
                sa.delete(policies).where(policies.c.scope == scope, policies.c.scope_id == (scope_id or ""))
            )
        self._book = None
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
