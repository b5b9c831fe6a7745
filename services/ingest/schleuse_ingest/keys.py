"""Data keys of calls: one per caller (crypto-shredding on erasure) and one per day for dead letters."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncSession

from schleuse_common.crypto import FORMAT_V1, NONCE_BYTES, DataKey, DataKeyring, KeyEncryptionKey, data_keys_table
from schleuse_common.ids import new_id

_metadata = MetaData()
DATA_KEYS: Table = data_keys_table(_metadata)


@lru_cache(maxsize=262_144)
def caller_owner(caller_number: str) -> str:
    """The key owner of a caller: a digest of the E.164 number, so key rows carry no number."""
    return "caller:" + hashlib.sha256(caller_number.encode()).hexdigest()[:40]


def dead_letter_owner(day: str) -> str:
    """Dead letters may lack a valid number, so they are keyed per day and shredded by the purge."""
    return f"deadletters:{day}"


def seal(aead: AESGCM, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """`schleuse_common.crypto.encrypt` with a reusable cipher: version byte, nonce, ciphertext with tag.

    `nonce` must be fresh random bytes (`nonces()`), never reused under the same key.
    """
    return FORMAT_V1 + nonce + aead.encrypt(nonce, plaintext, aad or None)


def nonces(count: int) -> list[bytes]:
    """`count` random 96-bit nonces from one call to the OS random source (one syscall per batch)."""
    pool = os.urandom(NONCE_BYTES * count)
    return [pool[i : i + NONCE_BYTES] for i in range(0, len(pool), NONCE_BYTES)]


class CallKeyring(DataKeyring):
    """A DataKeyring that fetches and creates many owners' keys in one round trip (ingest batches)."""

    def __init__(self, kek: KeyEncryptionKey, cache_size: int = 200_000) -> None:
        super().__init__(DATA_KEYS, kek, cache_size=cache_size)
        self._aeads: dict[str, AESGCM] = {}

    def cached(self, owner_id: str) -> DataKey | None:
        """The owner's data key if this process has it (no database access; safe from a worker thread)."""
        return self._by_owner.get(owner_id)

    def aead(self, dk: DataKey) -> AESGCM:
        """A cipher for a data key, reused across a batch's rows (dropped when the key leaves the cache)."""
        aead = self._aeads.get(dk.key_id)
        if aead is None:
            if len(self._aeads) >= self._cache_size:
                self._aeads.clear()
            aead = self._aeads[dk.key_id] = AESGCM(dk.key)
        return aead

    def forget_cached(self, owner_id: str) -> None:
        """Drop an owner's key and cipher from this process (shredded here or by another replica)."""
        dk = self._by_owner.get(owner_id)
        if dk is not None:
            self._aeads.pop(dk.key_id, None)
        super().forget_cached(owner_id)

    async def for_owners(self, session: AsyncSession, owner_ids: set[str]) -> dict[str, DataKey]:
        """Every owner's data key, creating the missing ones in one statement."""
        found: dict[str, DataKey] = {}
        missing: list[str] = []
        for owner in owner_ids:
            cached = self._by_owner.get(owner)
            if cached is None:
                missing.append(owner)
            else:
                found[owner] = cached
        if not missing:
            return found
        await self._load(session, missing, found)
        absent = [o for o in missing if o not in found]
        if absent:
            owners = sorted(absent)  # sorted: concurrent batches lock in the same order
            fresh = {o: (new_id(), AESGCM.generate_key(bit_length=256)) for o in owners}
            created = await session.execute(
                sa.text(
                    "INSERT INTO data_keys (key_id, owner_id, kek_id, wrapped) "
                    "SELECT k, o, :kek, w FROM unnest(CAST(:keys AS text[]), CAST(:owners AS text[]), "
                    "CAST(:wrapped AS bytea[])) AS t(k, o, w) ON CONFLICT (owner_id) DO NOTHING RETURNING owner_id"
                ),
                {
                    "kek": self.kek.kek_id,
                    "keys": [fresh[o][0] for o in owners],
                    "owners": owners,
                    "wrapped": [self.kek.wrap(fresh[o][1]) for o in owners],
                },
            )
            made = [owner for (owner,) in created]
            for owner in made:
                found[owner] = self._remember(owner, DataKey(*fresh[owner]))
            self._forget_on_rollback(session, made)
            raced = [o for o in owners if o not in found]  # another replica created them meanwhile
            if raced:
                await self._load(session, raced, found)
        return found

    def _forget_on_rollback(self, session: AsyncSession, owners: list[str]) -> None:
        """Keys created in a transaction that rolls back never existed: they must not stay cached."""

        def forget(_session: object) -> None:
            for owner in owners:
                self.forget_cached(owner)

        if owners:
            sa.event.listen(session.sync_session, "after_rollback", forget, once=True)

    async def keys_by_id(self, session: AsyncSession, key_ids: set[str]) -> dict[str, bytes]:
        """The data keys with these ids; shredded ones are absent."""
        result: dict[str, bytes] = {}
        missing = []
        for key_id in key_ids:
            cached = self._by_id.get(key_id)
            if cached is None:
                missing.append(key_id)
            else:
                result[key_id] = cached.key
        if missing:
            rows = await session.execute(
                sa.text("SELECT key_id, owner_id, wrapped FROM data_keys WHERE key_id = ANY(:ids)"), {"ids": missing}
            )
            for row in rows:
                result[row.key_id] = self._remember(row.owner_id, DataKey(row.key_id, self.kek.unwrap(row.wrapped))).key
        return result

    async def _load(self, session: AsyncSession, owners: list[str], into: dict[str, DataKey]) -> None:
        rows = await session.execute(
            sa.text("SELECT owner_id, key_id, wrapped FROM data_keys WHERE owner_id = ANY(:owners)"),
            {"owners": owners},
        )
        for row in rows:
            into[row.owner_id] = self._remember(row.owner_id, DataKey(row.key_id, self.kek.unwrap(row.wrapped)))
