"""Envelope encryption: AES-256-GCM data keys per owner, wrapped by a key-encryption key (local file or Vault transit).

Deleting an owner's data keys makes everything encrypted under them unreadable (crypto-shredding).
"""

from __future__ import annotations

import base64
import os
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Column, DateTime, LargeBinary, MetaData, String, Table, delete, event, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from schleuse_common.auth import load_or_create_key
from schleuse_common.ids import new_id
from schleuse_common.settings import InfraSettings

FORMAT_V1 = b"\x01"
NONCE_BYTES = 12


class DecryptionError(Exception):
    """Ciphertext could not be opened: wrong key, shredded key or tampered data."""


def encrypt(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """AES-256-GCM: version byte, random 96-bit nonce, ciphertext with tag."""
    nonce = os.urandom(NONCE_BYTES)
    return FORMAT_V1 + nonce + AESGCM(key).encrypt(nonce, plaintext, aad or None)


def decrypt(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    """Open what `encrypt` made; raises DecryptionError on any mismatch."""
    if not blob or blob[:1] != FORMAT_V1:
        raise DecryptionError("unknown ciphertext format")
    nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, aad or None)
    except InvalidTag as e:
        raise DecryptionError("ciphertext does not open with this key") from e


def encrypt_text(key: bytes, text: str, aad: str = "") -> str:
    """Encrypt text to URL-safe base64 (for JSON payloads)."""
    return base64.urlsafe_b64encode(encrypt(key, text.encode(), aad.encode())).decode()


def decrypt_text(key: bytes, token: str, aad: str = "") -> str:
    """Open what `encrypt_text` made."""
    return decrypt(key, base64.urlsafe_b64decode(token), aad.encode()).decode()


class KeyEncryptionKey(Protocol):
    """Wraps and unwraps data keys; the KEK itself never leaves its home."""

    kek_id: str

    def wrap(self, dek: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes) -> bytes: ...


class LocalKek:
    """A KEK from a local key file (the embedded default)."""

    def __init__(self, key: bytes, kek_id: str = "local-1") -> None:
        self._key = key
        self.kek_id = kek_id

    def wrap(self, dek: bytes) -> bytes:
        return encrypt(self._key, dek, self.kek_id.encode())

    def unwrap(self, wrapped: bytes) -> bytes:
        return decrypt(self._key, wrapped, self.kek_id.encode())


class VaultTransitKek:
    """A KEK held by Vault/OpenBao transit: wrap and unwrap are calls to the server."""

    def __init__(self, url: str, token: str, key_name: str) -> None:
        import hvac

        self._client = hvac.Client(url=url, token=token)
        self._key_name = key_name
        self.kek_id = f"vault:{key_name}"

    def wrap(self, dek: bytes) -> bytes:
        resp = self._client.secrets.transit.encrypt_data(name=self._key_name, plaintext=base64.b64encode(dek).decode())
        return str(resp["data"]["ciphertext"]).encode()

    def unwrap(self, wrapped: bytes) -> bytes:
        resp = self._client.secrets.transit.decrypt_data(name=self._key_name, ciphertext=wrapped.decode())
        return base64.b64decode(resp["data"]["plaintext"])


def load_kek(infra: InfraSettings) -> KeyEncryptionKey:
    """Vault transit when configured, else the local key file (created on first use)."""
    if infra.vault_url and infra.vault_token:
        return VaultTransitKek(infra.vault_url, infra.vault_token, infra.vault_transit_key)
    return LocalKek(load_or_create_key(infra.key_file))


def data_keys_table(metadata: MetaData) -> Table:
    """The wrapped data keys of a service, one active key per owner."""
    return Table(
        "data_keys",
        metadata,
        Column("key_id", String(64), primary_key=True),
        Column("owner_id", String(128), nullable=False, unique=True),
        Column("kek_id", String(128), nullable=False),
        Column("wrapped", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    )


@dataclass(frozen=True)
class DataKey:
    key_id: str
    key: bytes


class DataKeyring:
    """Per-owner data keys kept wrapped in the service's own schema, unwrapped keys cached in memory."""

    def __init__(self, table: Table, kek: KeyEncryptionKey, cache_size: int = 10_000) -> None:
        self.table = table
        self.kek = kek
        self._by_owner: OrderedDict[str, DataKey] = OrderedDict()
        self._by_id: dict[str, DataKey] = {}
        self._cache_size = cache_size

    def _remember(self, owner_id: str, dk: DataKey) -> DataKey:
        self._by_owner[owner_id] = dk
        self._by_owner.move_to_end(owner_id)
        self._by_id[dk.key_id] = dk
        while len(self._by_owner) > self._cache_size:
            _, old = self._by_owner.popitem(last=False)
            self._by_id.pop(old.key_id, None)
        return dk

    def cached(self, owner_id: str) -> DataKey | None:
        """The owner's data key if this process has it (no database access)."""
        return self._by_owner.get(owner_id)

    async def for_owner(self, session: AsyncSession, owner_id: str) -> DataKey:
        """The owner's data key, created on first use."""
        cached = self._by_owner.get(owner_id)
        if cached is not None:
            return cached
        return (await self.for_owners(session, {owner_id}))[owner_id]

    async def for_owners(self, session: AsyncSession, owner_ids: Iterable[str]) -> dict[str, DataKey]:
        """Every owner's data key, loading the uncached ones in one query and creating the missing in one more."""
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
        owners = sorted(o for o in missing if o not in found)  # sorted: concurrent creators lock in one order
        if owners:
            fresh = {o: DataKey(new_id(), AESGCM.generate_key(bit_length=256)) for o in owners}
            t = self.table
            created = await session.execute(
                insert(t).on_conflict_do_nothing(index_elements=["owner_id"]).returning(t.c.owner_id),
                [
                    {
                        "key_id": fresh[o].key_id,
                        "owner_id": o,
                        "kek_id": self.kek.kek_id,
                        "wrapped": self.kek.wrap(fresh[o].key),
                    }
                    for o in owners
                ],
            )
            made = list(created.scalars())
            for owner in made:
                found[owner] = self._remember(owner, fresh[owner])
            self._forget_on_rollback(session, made)
            raced = [o for o in owners if o not in found]  # another replica created them meanwhile
            if raced:
                await self._load(session, raced, found)
        return found

    async def by_id(self, session: AsyncSession, key_id: str) -> bytes | None:
        """The data key with `key_id`, or None when it was shredded."""
        cached = self._by_id.get(key_id)
        if cached is not None:
            return cached.key
        return (await self.keys_by_id(session, {key_id})).get(key_id)

    async def keys_by_id(self, session: AsyncSession, key_ids: Iterable[str]) -> dict[str, bytes]:
        """The data keys with these ids; shredded ones are absent."""
        result: dict[str, bytes] = {}
        missing: list[str] = []
        for key_id in key_ids:
            cached = self._by_id.get(key_id)
            if cached is None:
                missing.append(key_id)
            else:
                result[key_id] = cached.key
        if missing:
            t = self.table
            rows = await session.execute(select(t.c.key_id, t.c.owner_id, t.c.wrapped).where(t.c.key_id.in_(missing)))
            for row in rows:
                result[row.key_id] = self._remember(row.owner_id, DataKey(row.key_id, self.kek.unwrap(row.wrapped))).key
        return result

    async def _load(self, session: AsyncSession, owners: list[str], into: dict[str, DataKey]) -> None:
        t = self.table
        rows = await session.execute(select(t.c.owner_id, t.c.key_id, t.c.wrapped).where(t.c.owner_id.in_(owners)))
        for row in rows:
            into[row.owner_id] = self._remember(row.owner_id, DataKey(row.key_id, self.kek.unwrap(row.wrapped)))

    def _forget_on_rollback(self, session: AsyncSession, owners: list[str]) -> None:
        """Keys created in a transaction that rolls back never existed: they must not stay cached."""

        def forget(_session: object) -> None:
            for owner in owners:
                self.forget_cached(owner)

        if owners:
            event.listen(session.sync_session, "after_rollback", forget, once=True)

    async def shred(self, session: AsyncSession, owner_id: str) -> int:
        """Delete the owner's data keys: everything encrypted under them is unreadable from now on."""
        dk = self._by_owner.pop(owner_id, None)
        if dk is not None:
            self._by_id.pop(dk.key_id, None)
        result = await session.execute(delete(self.table).where(self.table.c.owner_id == owner_id))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def forget_cached(self, owner_id: str) -> None:
        """Drop an owner's key from this process's cache (another replica shredded it)."""
        dk = self._by_owner.pop(owner_id, None)
        if dk is not None:
            self._by_id.pop(dk.key_id, None)

    async def rewrap(self, session: AsyncSession, new_kek: KeyEncryptionKey) -> int:
        """Key rotation: re-wrap every data key under `new_kek` without touching the data."""
        t = self.table
        rows = (await session.execute(select(t.c.key_id, t.c.wrapped))).all()
        for row in rows:
            dek = self.kek.unwrap(row.wrapped)
            await session.execute(
                t.update().where(t.c.key_id == row.key_id).values(wrapped=new_kek.wrap(dek), kek_id=new_kek.kek_id)
            )
        self.kek = new_kek
        return len(rows)
