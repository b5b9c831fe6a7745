"""Local passwords: argon2id hashes, a minimum length, lockout after repeated failures."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults
# Verified when the login name is unknown, so a miss costs as much as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class WeakPassword(ValueError):
    """A password that does not meet the policy."""


def check_policy(password: str, min_length: int = MIN_LENGTH) -> None:
    """Raise WeakPassword unless `password` is long enough (length beats composition rules, NIST 800-63B)."""
    if len(password) < min_length:
        raise WeakPassword(f"password must have at least {min_length} characters")
    if len(password) > 1024:
        raise WeakPassword("password must have at most 1024 characters")


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when `password` matches `stored`; constant work when there is no stored hash."""
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when `stored` was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored)


def random_password() -> str:
    """A random password well above the minimum length, for first admins and resets."""
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class Lockout:
    """After `threshold` consecutive failures an account is locked for `duration`."""

    threshold: int = 5
    duration: timedelta = timedelta(minutes=15)

    def is_locked(self, locked_until: datetime | None, now: datetime) -> bool:
        """True while a lock is in force."""
        return locked_until is not None and locked_until > now

    def after_failure(self, failures: int, now: datetime) -> tuple[int, datetime | None]:
        """The new failure count and, once the threshold is reached, when the lock ends."""
        failures += 1
        if failures >= self.threshold:
            return failures, now + self.duration
        return failures, None
