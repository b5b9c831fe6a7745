"""The tamper-evident audit chain: each entry's hash covers its content and the previous hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

GENESIS = "0" * 64


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the canonical JSON of the entry."""
    canonical = orjson.dumps(dict(entry), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


def first_break(entries: Iterable[tuple[Mapping[str, Any], str, str]]) -> int | None:
    """Index of the first entry whose (content, prev_hash, hash) does not chain, or None if intact."""
    expected_prev = GENESIS
    for index, (entry, prev_hash, stored_hash) in enumerate(entries):
        if prev_hash != expected_prev or entry_hash(prev_hash, entry) != stored_hash:
            return index
        expected_prev = stored_hash
    return None
