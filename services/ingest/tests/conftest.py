"""Fixtures: the ingest schema migrated on the session's real Postgres, a clean slate per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus
from schleuse_common.crypto import load_kek
from schleuse_common.db import Database, run_migrations
from schleuse_common.settings import InfraSettings
from schleuse_ingest.domain.access import AccessPolicy
from schleuse_ingest.handlers import CallsApi, RetentionSource
from schleuse_ingest.ingestor import Ingestor
from schleuse_ingest.keys import CallKeyring
from schleuse_ingest.purge import Purge
from schleuse_ingest.tailer import Tailer

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
TABLES = (
    "calls, call_status, call_notes, actions_audit, dead_letters, file_offsets, data_keys, retention_runs, "
    "call_stats_daily, call_stats_topic, ingest_config"
)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def ingest_db(infra: InfraSettings) -> AsyncIterator[Database]:
    await asyncio.to_thread(run_migrations, infra.database_url, "ingest", MIGRATIONS)
    db = Database(infra.database_url, "ingest")
    yield db
    await db.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def db(ingest_db: Database) -> Database:
    async with ingest_db.session() as s:
        await s.execute(sa.text(f"TRUNCATE {TABLES} RESTART IDENTITY"))
    return ingest_db


@pytest.fixture
def keyring(infra: InfraSettings) -> CallKeyring:
    return CallKeyring(load_kek(infra))


@pytest.fixture
def calls_dir(tmp_path: Path) -> Path:
    d = tmp_path / "calls"
    d.mkdir()
    return d


@pytest.fixture
def ingestor(db: Database, keyring: CallKeyring, bus: Bus) -> Ingestor:
    return Ingestor(db, keyring, bus)


@pytest.fixture
def tailer(calls_dir: Path, db: Database, ingestor: Ingestor) -> Tailer:
    return Tailer(calls_dir, db, ingestor, batch_lines=3, settle_s=3600)


@pytest.fixture
def retention() -> RetentionSource:
    return RetentionSource(30, ttl_s=0)


@pytest.fixture
def purge(db: Database, keyring: CallKeyring, retention: RetentionSource, calls_dir: Path, tailer: Tailer) -> Purge:
    return Purge(db, keyring, retention, calls_dir, tailer=tailer)


_served: dict[str, CallsApi] = {}
# The machine's NATS is shared with running services (make run, e2e): test subjects get a private prefix.
API_PREFIX = f"test{uuid.uuid4().hex[:8]}."


@pytest_asyncio.fixture(loop_scope="session")
async def api(
    db: Database, keyring: CallKeyring, bus: Bus, retention: RetentionSource, calls_dir: Path, purge: Purge
) -> CallsApi:
    # The bus serves the subjects once per session; each test's CallsApi is swapped in behind them.
    instance = CallsApi(db, keyring, bus, AccessPolicy(), retention, calls_dir, purge=purge.run)
    first = "api" not in _served
    _served["api"] = instance
    if first:
        proxy = CallsApi.__new__(CallsApi)
        for name in (
            "list_calls",
            "get",
            "change_status",
            "add_note",
            "assign",
            "bulk",
            "export",
            "delete",
            "stats",
            "config",
            "purge",
            "dead_letters",
        ):
            setattr(proxy, name, _forward(name))
        await CallsApi.register(proxy, bus, prefix=API_PREFIX)
    return instance


def _forward(name: str):  # type: ignore[no-untyped-def]
    async def call(env):  # type: ignore[no-untyped-def]
        return await getattr(_served["api"], name)(env)

    return call


@pytest.fixture
def actors(actor_key: bytes) -> dict[str, Actor]:
    return {role: Actor(id=f"{role}-1", roles=[role]).signed(actor_key) for role in ("agent", "admin", "dpo", "user")}
