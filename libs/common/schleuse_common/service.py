"""The runner every service's main.py uses: settings, logging, tracing, bus, database, Redis, health, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from redis.asyncio import Redis

from schleuse_common import logging as slog
from schleuse_common import tracing
from schleuse_common.auth import load_or_create_key
from schleuse_common.bus import Bus
from schleuse_common.crypto import KeyEncryptionKey, load_kek
from schleuse_common.db import Database, run_migrations
from schleuse_common.health import Check, health_app
from schleuse_common.settings import ServiceSettings

log = structlog.get_logger("schleuse.service")


@dataclass
class Runtime:
    """What a service's wiring receives: connected clients and a place to register checks and cleanups."""

    name: str
    settings: ServiceSettings
    bus: Bus
    kek: KeyEncryptionKey
    actor_key: bytes
    db: Database | None = None
    redis: Redis | None = None
    checks: dict[str, Check] = field(default_factory=dict)
    cleanups: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    background: list[asyncio.Task[Any]] = field(default_factory=list)

    def spawn(self, coro: Awaitable[Any], name: str) -> None:
        """Run a background job for the life of the service."""
        self.background.append(asyncio.ensure_future(coro))
        self.background[-1].set_name(name)


@dataclass(frozen=True)
class ServiceSpec:
    """How a service is shaped: its schema and migrations, whether it uses Redis, its HTTP app."""

    name: str
    schema: str | None = None
    migrations: Path | None = None
    uses_redis: bool = False


Wire = Callable[[Runtime], Awaitable[Any]]


async def start(spec: ServiceSpec, settings: ServiceSettings, wire: Wire) -> Runtime:
    """Connect everything, migrate, wire handlers; returns the running runtime."""
    infra = settings.infra
    slog.configure(spec.name, infra.log_level, infra.log_json)
    tracing.configure(spec.name, infra.otlp_endpoint)
    actor_key = load_or_create_key(infra.internal_key_file)
    bus = await Bus.connect(infra.nats_url, f"schleuse-{spec.name}", actor_key=actor_key)
    await bus.ensure_streams()
    rt = Runtime(spec.name, settings, bus, load_kek(infra), actor_key)
    rt.checks["nats"] = _nats_check(bus)
    if spec.schema is not None:
        if spec.migrations is not None:
            await asyncio.to_thread(run_migrations, infra.database_url, spec.schema, spec.migrations)
        rt.db = Database(infra.database_url, spec.schema)
        rt.checks["postgres"] = rt.db.ping
    if spec.uses_redis:
        rt.redis = Redis.from_url(infra.redis_url)
        redis = rt.redis

        async def redis_ping() -> None:
            await redis.ping()

        rt.checks["redis"] = redis_ping
    await wire(rt)
    log.info("service.started", schema=spec.schema)
    return rt


async def stop(rt: Runtime) -> None:
    """Stop background jobs, drain the bus, close pools."""
    for task in rt.background:
        task.cancel()
    for task in rt.background:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    for cleanup in reversed(rt.cleanups):
        with contextlib.suppress(Exception):
            await cleanup()
    await rt.bus.close()
    if rt.db is not None:
        await rt.db.dispose()
    if rt.redis is not None:
        await rt.redis.aclose()
    log.info("service.stopped")


def _nats_check(bus: Bus) -> Check:
    async def check() -> None:
        if not bus.connected:
            raise ConnectionError("NATS disconnected")
        await bus.nc.flush(timeout=1)

    return check


async def serve_forever(spec: ServiceSpec, settings: ServiceSettings, wire: Wire, app: Any = None) -> None:
    """Start, serve health (or the service's own app) until SIGINT/SIGTERM, then stop cleanly."""
    rt = await start(spec, settings, wire)
    http_app = app(rt) if callable(app) and not hasattr(app, "router") else app
    server = _QuietServer(
        uvicorn.Config(
            http_app or health_app(spec.name, rt.checks),
            host=settings.health_host,
            port=settings.health_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)
    server_task = asyncio.create_task(server.serve())
    await stop_event.wait()
    server.should_exit = True
    with contextlib.suppress(Exception):
        await server_task
    await stop(rt)


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def main(spec: ServiceSpec, settings_factory: Callable[[], ServiceSettings], wire: Wire, app: Any = None) -> None:
    """Console-script entry point of a service."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve_forever(spec, settings_factory(), wire, app))
