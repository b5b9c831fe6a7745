"""From raw lines or messages to committed calls: validate, store with the file cursor, announce changes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import structlog

from schleuse_common.bus import Bus
from schleuse_common.contracts.calls import (
    CALLS_CHANGED_CREATED,
    CALLS_CHANGED_UPDATED,
    CallsChanged,
)
from schleuse_common.db import Database
from schleuse_ingest import metrics, store
from schleuse_ingest.domain.events import InvalidEvent, NormalisedCall, normalise, parse_line
from schleuse_ingest.domain.tailing import FileCursor
from schleuse_ingest.keys import CallKeyring

log = structlog.get_logger("schleuse.ingest")
CHANGE_CHUNK = 1000


class RawEvent(NamedTuple):
    """One event as it arrived: bytes (a JSONL line) or an already decoded object (bus).

    A NamedTuple rather than a frozen dataclass: the tailer makes one per line and this is cheaper.
    """

    raw: bytes
    origin: str
    position: int | None
    source: str
    decoded: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated batch: calls to upsert and events to keep as dead letters."""

    calls: store.StagedCalls
    rejected: list[store.Rejected]


class Ingestor:
    """Validates batches of raw events and commits them, with the file cursor, in one transaction."""

    def __init__(self, db: Database, keyring: CallKeyring, bus: Bus | None) -> None:
        self.db = db
        self.keyring = keyring
        self.bus = bus

    async def ingest(
        self, events: Sequence[RawEvent], *, kind: str, cursor: FileCursor | None = None
    ) -> store.BatchOutcome:
        """Store one batch (calls, dead letters, cursor) atomically, then publish `calls.changed.*`."""
        return await self.commit(self.prepare(events), kind=kind, cursor=cursor)

    def prepare(self, events: Sequence[RawEvent]) -> Prepared:
        """Validate, normalise and encrypt a batch (CPU only: may run in a thread while the previous batch commits)."""
        calls, rejected = split_valid(events)
        return Prepared(store.stage_calls(self.keyring, calls), rejected)

    async def commit(self, prepared: Prepared, *, kind: str, cursor: FileCursor | None = None) -> store.BatchOutcome:
        """Write a prepared batch with its cursor in one transaction, then announce the changes."""
        started = time.perf_counter()
        calls, rejected = prepared.calls, prepared.rejected
        async with self.db.session() as session:
            outcome = await store.write_batch(session, self.keyring, calls=calls, rejected=rejected, cursor=cursor)
        metrics.BATCH_SECONDS.labels(kind=kind).observe(time.perf_counter() - started)
        metrics.EVENTS.labels(kind=kind, outcome="valid").inc(calls.received)
        if rejected:
            metrics.EVENTS.labels(kind=kind, outcome="invalid").inc(len(rejected))
            for r in rejected:
                metrics.DEAD_LETTERS.labels(reason=r.reason).inc()
                log.warning("ingest.dead_letter", reason=r.reason, origin=r.origin, position=r.position)
        await self.announce(outcome)
        return outcome

    async def announce(self, outcome: store.BatchOutcome) -> None:
        """Tell live views which calls are new or changed (after commit; ids only)."""
        if self.bus is None:
            return
        for subject, change, items in (
            (CALLS_CHANGED_CREATED, "created", outcome.created),
            (CALLS_CHANGED_UPDATED, "updated", outcome.updated),
        ):
            for i in range(0, len(items), CHANGE_CHUNK):
                part = items[i : i + CHANGE_CHUNK]
                await publish_changed(self.bus, change, [c for c, _ in part], [v for _, v in part], subject)


async def publish_changed(
    bus: Bus, change: str, ids: list[int], versions: list[int], subject: str | None = None
) -> None:
    """Publish one `calls.changed.<change>` fact; a failure is logged, the data is already committed."""
    try:
        await bus.publish(
            subject or f"calls.changed.{change}",
            CallsChanged(change=change, call_ids=ids, versions=versions),
        )
    except Exception as e:  # live updates are best effort; clients resync on reconnect
        log.warning("ingest.publish_changed_failed", error=type(e).__name__)


def split_valid(events: Sequence[RawEvent]) -> tuple[list[NormalisedCall], list[store.Rejected]]:
    """Validate and normalise each event; invalid ones become dead letters with their reason."""
    calls: list[NormalisedCall] = []
    rejected: list[store.Rejected] = []
    for ev in events:
        try:
            payload = ev.decoded if ev.decoded is not None else parse_line(ev.raw)
            calls.append(normalise(payload, default_source=ev.source))
        except InvalidEvent as e:
            rejected.append(store.Rejected(ev.raw, e.reason, ev.source, ev.origin, ev.position))
    return calls, rejected
