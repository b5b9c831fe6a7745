"""All services as real processes against the session's real NATS, Postgres and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from schleuse_common.db import drop_database, ensure_database, with_database
from schleuse_common.devrun import Platform, bootstrap_admin, migrate_all, platform_env
from schleuse_common.devstack import Stack, free_port
from tests.e2e.upstream import RecordingUpstream

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def upstream() -> Iterator[RecordingUpstream]:
    """The OpenAI-compatible upstream: the demo provider, recording what it receives."""
    u = RecordingUpstream()
    u.start()
    yield u
    u.stop()


@pytest.fixture(scope="session")
def database_url(stack: Stack) -> Iterator[str]:
    """The platform's own database: integration tests of single services leave their rows in the session's."""
    url = with_database(stack.postgres.url, f"{make_url(stack.postgres.url).database}_e2e")
    ensure_database(url)
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def platform(
    stack: Stack, upstream: RecordingUpstream, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """The whole platform, its provider pointed at the recording upstream."""
    base = tmp_path_factory.mktemp("platform")
    env = platform_env(stack, base)
    env["SCHLEUSE_DATABASE_URL"] = database_url
    env["SCHLEUSE_LOG_JSON"] = "true"
    env["SCHLEUSE_PROVIDERS_DEMO_URL"] = upstream.url
    p = Platform(stack, base, env, free_port())
    p.demo_url = upstream.url
    try:
        migrate_all(database_url)
        p.start()
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="session")
def admin_key(platform: Platform) -> str:
    """An admin API key minted through the operator command."""
    return bootstrap_admin(platform.env)
