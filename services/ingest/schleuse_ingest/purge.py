"""The retention purge: calls, history, notes, audit, dead letters and JSONL files older than the policy."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import structlog

from schleuse_common.bus import Bus
from schleuse_common.contracts.calls import PurgeResult
from schleuse_common.db import Database
from schleuse_ingest import metrics, store
from schleuse_ingest.handlers import RetentionSource
from schleuse_ingest.ingestor import publish_changed
from schleuse_ingest.keys import CallKeyring, caller_owner
from schleuse_ingest.tailer import Tailer

log = structlog.get_logger("schleuse.ingest.purge")
BATCH = 5000


class Purge:
    """Removes what the policy no longer allows, keeping anonymous aggregates; records every run."""

    def __init__(
        self,
        db: Database,
        keyring: CallKeyring,
        retention: RetentionSource,
        directory: Path,
        *,
        tailer: Tailer | None = None,
        bus: Bus | None = None,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.retention = retention
        self.directory = directory
        self.tailer = tailer
        self.bus = bus
        self._lock = asyncio.Lock()

    async def run(self, now: datetime | None = None) -> PurgeResult:
        """One purge run (serialised within the process; batches keep transactions short)."""
        async with self._lock:
            return await self._run(now or datetime.now(UTC))

    async def _run(self, now: datetime) -> PurgeResult:
        async with self.db.session() as session:
            policy = await self.retention.policy(session)
            cutoff = policy.cutoff(now)
            run_id = await store.start_run(session, now, cutoff)
        counts = {"calls": 0, "dead": 0, "files": 0, "keys": 0}
        errors: list[str] = []
        try:
            await self._purge_calls(cutoff, counts)
            async with self.db.session() as session:
                counts["dead"], owners = await store.purge_dead_letters(session, cutoff)
                counts["keys"] += await store.shred_unused_keys(session, self.keyring, owners)
        except Exception as e:  # recorded in the run record (errors); the file purge still runs
            errors.append(f"database: {type(e).__name__}")
        for path in sorted(self.directory.glob("calls-*.jsonl")):
            if not policy.file_expired(path.name, now):
                continue
            try:
                path.unlink()
                async with self.db.session() as session:
                    await store.delete_cursor(session, path.name)
                if self.tailer is not None:
                    self.tailer.forget(path.name)
                counts["files"] += 1
            except OSError as e:
                errors.append(f"file {path.name}: {type(e).__name__}")
        async with self.db.session() as session:
            await store.finish_run(session, run_id, counts, errors)
        for kind, key in (("calls", "calls"), ("dead_letters", "dead"), ("files", "files"), ("keys", "keys")):
            metrics.PURGED.labels(kind=kind).inc(counts[key])
        log.info("purge.finished", run_id=run_id, errors=len(errors), **counts)
        return PurgeResult(
            run_id=run_id,
            cutoff=cutoff,
            calls_deleted=counts["calls"],
            dead_letters_deleted=counts["dead"],
            files_deleted=counts["files"],
            keys_shredded=counts["keys"],
            errors=errors,
        )

    async def _purge_calls(self, cutoff: datetime, counts: dict[str, int]) -> None:
        while True:
            async with self.db.session() as session:
                batch = await store.expired_call_batch(session, cutoff, BATCH)
                if not batch:
                    return
                ids = [i for i, _ in batch]
                await store.aggregate_calls(session, ids)
                counts["calls"] += await store.delete_calls(session, ids)
                owners = sorted({caller_owner(n) for _, n in batch})
                counts["keys"] += await store.shred_unused_keys(session, self.keyring, owners)
            if self.bus is not None:
                await publish_changed(self.bus, "deleted", ids, [])

    async def run_periodically(self, interval_s: float) -> None:
        """Purge at start and then every interval (daily by default)."""
        while True:
            try:
                await self.run()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the next run retries; the failure is in the log and the run record
                log.warning("purge.failed", error=type(e).__name__)
            await asyncio.sleep(interval_s)
