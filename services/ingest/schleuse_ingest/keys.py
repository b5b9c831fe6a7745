"""Data keys of calls: one per caller (crypto-shredding on erasure) and one per day for dead letters."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncSession

from schleuse_common.crypto import DataKey, DataKeyring, KeyEncryptionKey, data_keys_table
from schleuse_common.ids import new_id

_metadata = MetaData()
DATA_KEYS: Table = data_keys_table(_metadata)


def caller_owner(caller_number: str) -> str:
    """The key owner of a caller: a digest of the E.164 number, so key rows carry no number."""
    return "caller:" + hashlib.sha256(caller_number.encode()).hexdigest()[:40]


def dead_letter_owner(day: str) -> str:
    """Dead letters may lack a valid number, so they are keyed per day and shredded by the purge."""
    return f"deadletters:{day}"


class CallKeyring(DataKeyring):
    """A DataKeyring that fetches and creates many owners' keys in one round trip (ingest batches)."""

    def __init__(self, kek: KeyEncryptionKey, cache_size: int = 200_000) -> None:
        super().__init__(DATA_KEYS, kek, cache_size=cache_size)

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
            await session.execute(
                sa.text(
                    "INSERT INTO data_keys (key_id, owner_id, kek_id, wrapped) "
                    "SELECT k, o, :kek, w FROM unnest(CAST(:keys AS text[]), CAST(:owners AS text[]), "
                    "CAST(:wrapped AS bytea[])) AS t(k, o, w) ON CONFLICT (owner_id) DO NOTHING"
                ),
                {
                    "kek": self.kek.kek_id,
                    "keys": [new_id() for _ in owners],
                    "owners": owners,
                    "wrapped": [self.kek.wrap(AESGCM.generate_key(bit_length=256)) for _ in owners],
                },
            )
            await self._load(session, absent, found)
        return found

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
