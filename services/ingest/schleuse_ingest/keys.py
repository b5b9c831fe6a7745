"""Data keys of calls: one per caller (crypto-shredding on erasure) and one per day for dead letters."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import MetaData, Table

from schleuse_common.crypto import FORMAT_V1, NONCE_BYTES, DataKey, DataKeyring, KeyEncryptionKey, data_keys_table

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
    """A DataKeyring sized for ingest batches, with a reusable cipher per data key."""

    def __init__(self, kek: KeyEncryptionKey, cache_size: int = 200_000) -> None:
        super().__init__(DATA_KEYS, kek, cache_size=cache_size)
        self._aeads: dict[str, AESGCM] = {}

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
