"""API keys: shown once, stored as a hash, identified by a visible prefix."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

KEY_PREFIX = "sk-sl-"
VISIBLE_CHARS = 12


@dataclass(frozen=True)
class NewKey:
    """A freshly minted key: `secret` is shown to its owner once and never stored."""

    secret: str
    prefix: str
    digest: str


def mint_key() -> NewKey:
    """A new random API key with its stored digest and visible prefix."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewKey(secret=secret, prefix=secret[:VISIBLE_CHARS], digest=digest_key(secret))


def digest_key(secret: str) -> str:
    """SHA-256 of a key: keys carry 256 bits of randomness, so a fast hash is safe and cheap to check."""
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_key(value: str) -> bool:
    """Cheap shape check before any lookup."""
    return value.startswith(KEY_PREFIX) and 20 <= len(value) <= 128
