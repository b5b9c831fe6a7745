"""Envelope encryption and crypto-shredding against the real Postgres."""

import pytest
import sqlalchemy as sa
from sqlalchemy import MetaData

from schleuse_common.crypto import (
    DataKeyring,
    DecryptionError,
    LocalKek,
    data_keys_table,
    decrypt,
    decrypt_text,
    encrypt,
    encrypt_text,
)
from schleuse_common.db import Database
from schleuse_common.settings import InfraSettings


def test_roundtrip_and_tamper_detection() -> None:
    key = b"k" * 32
    blob = encrypt(key, b"Herr Schmidt, IBAN DE89...", b"thread-1")
    assert b"Schmidt" not in blob
    assert decrypt(key, blob, b"thread-1") == b"Herr Schmidt, IBAN DE89..."
    with pytest.raises(DecryptionError):
        decrypt(key, blob, b"thread-2")  # bound to its context
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(DecryptionError):
        decrypt(key, tampered, b"thread-1")
    assert encrypt(key, b"x") != encrypt(key, b"x")  # fresh nonce each time


def test_text_tokens_roundtrip() -> None:
    token = encrypt_text(b"z" * 32, "Grüße", "aad")
    assert decrypt_text(b"z" * 32, token, "aad") == "Grüße"


async def test_keyring_creates_one_key_per_owner_and_shreds(infra: InfraSettings) -> None:
    schema = "common_test_keys"
    md = MetaData(schema=schema)
    table = data_keys_table(md)
    db = Database(infra.database_url, schema)
    async with db.engine.begin() as conn:
        await conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        await conn.run_sync(md.create_all)
    ring = DataKeyring(table, LocalKek(b"q" * 32))
    async with db.session() as s:
        a1 = await ring.for_owner(s, "alice")
        a2 = await ring.for_owner(s, "alice")
        b = await ring.for_owner(s, "bob")
    assert a1 == a2 and a1.key != b.key
    blob = encrypt(a1.key, b"secret")
    fresh = DataKeyring(table, LocalKek(b"q" * 32))  # another replica, empty cache
    async with db.session() as s:
        assert await fresh.by_id(s, a1.key_id) == a1.key
        wrapped = (await s.execute(sa.select(table.c.wrapped).where(table.c.owner_id == "alice"))).scalar_one()
    assert a1.key not in wrapped
    async with db.session() as s:
        assert await ring.shred(s, "alice") == 1
    fresh.forget_cached("alice")
    async with db.session() as s:
        assert await fresh.by_id(s, a1.key_id) is None  # unreadable from now on
    with pytest.raises(DecryptionError):
        decrypt(b.key, blob)
    async with db.session() as s:
        assert await ring.rewrap(s, LocalKek(b"n" * 32, "local-2")) == 1
    rotated = DataKeyring(table, LocalKek(b"n" * 32, "local-2"))
    async with db.session() as s:
        assert await rotated.by_id(s, b.key_id) == b.key
    await db.dispose()


async def test_keys_of_a_rolled_back_transaction_are_not_kept(infra: InfraSettings) -> None:
    schema = "common_test_keys"
    md = MetaData(schema=schema)
    table = data_keys_table(md)
    db = Database(infra.database_url, schema)
    async with db.engine.begin() as conn:
        await conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        await conn.run_sync(md.create_all)
    ring = DataKeyring(table, LocalKek(b"q" * 32))
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            await ring.for_owners(s, {"carla", "dora"})
            raise RuntimeError("the turn failed after the keys were made")
    assert ring.cached("carla") is None and ring.cached("dora") is None  # never stored, so never used
    async with db.session() as s:
        keys = await ring.for_owners(s, {"carla", "dora", "erik"})
    assert len({dk.key_id for dk in keys.values()}) == 3
    async with db.session() as s:
        stored = await DataKeyring(table, LocalKek(b"q" * 32)).keys_by_id(s, {dk.key_id for dk in keys.values()})
    assert stored == {dk.key_id: dk.key for dk in keys.values()}
    await db.dispose()
