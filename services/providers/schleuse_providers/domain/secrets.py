"""Showing secrets without revealing them."""

from __future__ import annotations


def mask(secret: str | None) -> str | None:
    """`sk-abcdefghwxyz` -> `sk-a****wxyz`; short secrets are fully masked."""
    if not secret:
        return None
    if len(secret) < 12:
        return "****"
    return f"{secret[:4]}****{secret[-4:]}"
