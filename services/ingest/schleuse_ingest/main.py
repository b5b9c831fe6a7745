"""Wiring of the ingest service: tailer, JetStream consumer, calls API and the retention purge."""

from __future__ import annotations

from pathlib import Path

import structlog

from schleuse_common import service
from schleuse_common.service import Runtime, ServiceSpec
from schleuse_common.settings import load_settings
from schleuse_ingest.consumer import run_consumer
from schleuse_ingest.handlers import CallsApi, RetentionSource
from schleuse_ingest.ingestor import Ingestor
from schleuse_ingest.keys import CallKeyring
from schleuse_ingest.purge import Purge
from schleuse_ingest.settings import IngestSettings
from schleuse_ingest.tailer import Tailer

log = structlog.get_logger("schleuse.ingest")
SPEC = ServiceSpec(name="ingest", schema="ingest", migrations=Path(__file__).resolve().parents[1] / "migrations")


async def wire(rt: Runtime) -> None:
    """Start reading files and the bus, serve `calls.api.*`, schedule the purge."""
    settings = rt.settings
    assert isinstance(settings, IngestSettings)
    assert rt.db is not None
    keyring = CallKeyring(rt.kek)
    ingestor = Ingestor(rt.db, keyring, rt.bus)
    directory = settings.dir.resolve()
    tailer = Tailer(
        directory,
        rt.db,
        ingestor,
        batch_lines=settings.batch_lines,
        chunk_bytes=settings.read_chunk_bytes,
        settle_s=settings.settle_s,
    )
    retention = RetentionSource(settings.retention_days)
    purge = Purge(rt.db, keyring, retention, directory, tailer=tailer, bus=rt.bus)
    api = CallsApi(rt.db, keyring, rt.bus, settings.access_policy(), retention, directory, purge=purge.run)
    await api.register(rt.bus)
    log.info("ingest.reading", directory=str(directory))
    rt.spawn(tailer.run(settings.poll_interval_s), "tailer")
    rt.spawn(
        run_consumer(rt.bus, ingestor, durable=settings.consumer_durable, batch=settings.consumer_batch),
        "consumer",
    )
    rt.spawn(purge.run_periodically(settings.purge_interval_s), "purge")


def main() -> None:
    """Console entry point `schleuse-ingest`."""
    service.main(SPEC, lambda: load_settings(IngestSettings), wire)


if __name__ == "__main__":
    main()
