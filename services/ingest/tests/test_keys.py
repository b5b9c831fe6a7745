"""Data keys under batch ingest: cached keys, rolled-back keys, rows staged off the event loop."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schleuse_common.crypto import decrypt
from schleuse_common.db import Database
from schleuse_ingest import store
from schleuse_ingest.domain.events import normalise
from schleuse_ingest.keys import CallKeyring, caller_owner, nonces, seal

from .helpers import event, rows


def test_seal_writes_the_common_ciphertext_format() -> None:
    key = AESGCM.generate_key(bit_length=256)
    fresh = nonces(3)
    assert len(set(fresh)) == 3 and all(len(n) == 12 for n in fresh)
    blob = seal(AESGCM(key), fresh[0], b"1984-03-07", b"dob:evt-1")
    assert decrypt(key, blob, b"dob:evt-1") == b"1984-03-07"


async def test_a_key_created_in_a_rolled_back_transaction_is_not_reused(db: Database, keyring: CallKeyring) -> None:
    owner = caller_owner("+4915123450001")
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            lost = (await keyring.for_owners(s, {owner}))[owner]
            raise RuntimeError("batch failed")
    assert keyring.cached(owner) is None
    async with db.session() as s:
        kept = (await keyring.for_owners(s, {owner}))[owner]
    assert kept.key_id != lost.key_id
    assert [r.key_id for r in await rows(db, "SELECT key_id FROM data_keys WHERE owner_id = :o", o=owner)] == [
        kept.key_id
    ]


async def test_rows_staged_under_a_key_that_changed_are_encrypted_again(db: Database, keyring: CallKeyring) -> None:
    call = normalise(event(1, date_of_birth="1984-03-07"), default_source="test")
    owner = caller_owner(call.caller_number)
    async with db.session() as s:
        old = (await keyring.for_owners(s, {owner}))[owner]
    staged = store.stage_calls(keyring, [call])  # encrypted under the cached key, as the tailer's thread does
    assert staged.keys == [old]
    async with db.session() as s:  # meanwhile the caller's key is shredded
        await s.execute(sa.text("DELETE FROM data_keys WHERE owner_id = :o"), {"o": owner})
        keyring.forget_cached(owner)
    async with db.session() as s:
        await store.write_batch(s, keyring, calls=staged, rejected=[])
    (key_id, dob_ct) = (await rows(db, "SELECT key_id, dob_ct FROM calls WHERE event_id = :e", e=call.event_id))[0]
    assert key_id != old.key_id
    async with db.session() as s:
        key = (await keyring.keys_by_id(s, {key_id}))[key_id]
    assert decrypt(key, dob_ct, f"dob:{call.event_id}".encode()) == b"1984-03-07"


async def test_duplicates_within_a_batch_keep_the_last_event(db: Database, keyring: CallKeyring) -> None:
    first = normalise(event(1, topic="Erste Fassung"), default_source="test")
    last = normalise(event(1, topic="Zweite Fassung"), default_source="test")
    async with db.session() as s:
        outcome = await store.write_batch(s, keyring, calls=[first, last], rejected=[])
    assert len(outcome.created) == 1
    assert [r.topic for r in await rows(db, "SELECT topic FROM calls")] == ["Zweite Fassung"]
