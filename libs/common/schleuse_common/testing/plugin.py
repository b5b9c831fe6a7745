"""Pytest plugin (loaded from the root pyproject): one real stack per test session.

Fixtures: `stack` (the infrastructure, found or embedded), `infra` (InfraSettings pointing at it,
with a fresh database and key files for this session), `bus` (a connected Bus), `redis`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from schleuse_common.auth import load_or_create_key
from schleuse_common.bus import Bus
from schleuse_common.db import drop_database, ensure_database, with_database
from schleuse_common.devstack import Stack, find_or_start
from schleuse_common.settings import InfraSettings

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """NATS, Postgres and Redis for the session; a database of its own, dropped at the end."""
    database = f"schleuse_test_{uuid.uuid4().hex[:10]}"
    saved = dict(os.environ)
    _isolate_nats()
    s = find_or_start(REPO / ".dev" / "test", database=database, ephemeral=True)
    if s.postgres.origin == "env":  # the configured server, but never the configured database
        s.postgres.url = with_database(s.postgres.url, database)
    ensure_database(s.postgres.url)
    keys = tmp_path_factory.mktemp("keys")
    os.environ.update(s.env())
    os.environ["SCHLEUSE_KEY_FILE"] = str(keys / "kek.key")
    os.environ["SCHLEUSE_INTERNAL_KEY_FILE"] = str(keys / "internal.key")
    os.environ.setdefault("SCHLEUSE_LOG_JSON", "false")
    try:
        yield s
    finally:
        os.environ.clear()
        os.environ.update(saved)
        drop_database(s.postgres.url)
        s.stop()


def _isolate_nats() -> None:
    """A NATS server of the session's own (real nats-server with JetStream, from the wheel).

    Subjects, queue groups and durable consumers are global to a NATS server, so a session on a shared
    one would answer (and consume) for a `make run` on the same machine, and replay its leftovers.
    PostgreSQL and Redis are isolated per session instead (own database, own key prefixes), so they are
    taken from the machine when reachable. `SCHLEUSE_TEST_NATS_URL` points the session at a given server.
    """
    os.environ.pop("SCHLEUSE_NATS_URL", None)
    if url := os.environ.get("SCHLEUSE_TEST_NATS_URL"):
        os.environ["SCHLEUSE_NATS_URL"] = url
        return
    parts = {p for p in os.environ.get("SCHLEUSE_EMBEDDED", "").split(",") if p}
    os.environ["SCHLEUSE_EMBEDDED"] = ",".join(sorted(parts | {"nats"}))


@pytest.fixture(scope="session")
def infra(stack: Stack) -> InfraSettings:
    """Infrastructure settings of this test session."""
    return InfraSettings()


@pytest.fixture(scope="session")
def actor_key(infra: InfraSettings) -> bytes:
    """The internal key that signs actors in this session."""
    return load_or_create_key(infra.internal_key_file)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def bus(infra: InfraSettings, actor_key: bytes) -> AsyncIterator[Bus]:
    """A connected bus with the platform's streams."""
    b = await Bus.connect(infra.nats_url, "schleuse-tests", actor_key=actor_key)
    await b.ensure_streams()
    yield b
    await b.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis(infra: InfraSettings) -> AsyncIterator[Redis]:
    """A Redis client on the session's Redis."""
    r = Redis.from_url(infra.redis_url)
    yield r
    await r.aclose()
