"""Actors on the bus: who a message acts for, signed by the gateway so no service can forge one."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

ROLES = ("user", "agent", "steward", "dpo", "admin")
ActorKind = Literal["user", "api_key", "service"]


class Actor(BaseModel):
    """A pseudonymous identity with roles and department; `sig` is an HMAC over the rest."""

    id: str
    kind: ActorKind = "user"
    roles: list[str] = Field(default_factory=list)
    department: str | None = None
    key_id: str | None = None
    sig: str = ""

    def has_role(self, *roles: str) -> bool:
        """True when the actor holds any of `roles`."""
        return any(r in self.roles for r in roles)

    def _canonical(self) -> bytes:
        parts = [self.id, self.kind, ",".join(sorted(self.roles)), self.department or "", self.key_id or ""]
        return "\x1f".join(parts).encode()

    def signed(self, key: bytes) -> Actor:
        """A copy carrying the signature made with `key`."""
        sig = hmac.new(key, self._canonical(), hashlib.sha256).hexdigest()
        return self.model_copy(update={"sig": sig})

    def verify(self, key: bytes) -> bool:
        """True when `sig` was made with `key` over exactly these fields."""
        expected = hmac.new(key, self._canonical(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.sig)


def load_or_create_key(path: Path, size: int = 32) -> bytes:
    """Read a raw key file, creating it (mode 0600) with random bytes when missing."""
    if path.is_file():
        data = path.read_bytes()
        if len(data) != size:
            raise ValueError(f"key file {path} must hold exactly {size} bytes")
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(size))
    try:
        os.link(tmp, path)  # atomic: concurrent first starts agree on one key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return load_or_create_key(path, size)


def keyed_hash(key: bytes, *parts: str) -> str:
    """A stable pseudonym for `parts` (e.g. issuer + subject) under `key`."""
    return hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()[:32]
