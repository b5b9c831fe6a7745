"""The JetStream consumer of `calls.events.>` against the real NATS and Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import orjson

from schleuse_common.bus import Bus
from schleuse_common.contracts.calls import CallEvent
from schleuse_common.db import Database
from schleuse_ingest.consumer import STREAM, run_consumer
from schleuse_ingest.ingestor import Ingestor

from .helpers import event, scalar


async def _until(db: Database, sql: str, expected: int) -> int:
    value = 0
    for _ in range(100):
        value = await scalar(db, sql)
        if value >= expected:
            return value
        await asyncio.sleep(0.05)
    return value


async def test_envelopes_and_bare_events_are_ingested_and_invalid_ones_dead_lettered(
    bus: Bus, db: Database, ingestor: Ingestor
) -> None:
    prefix = f"calls.events.t{uuid.uuid4().hex[:8]}"
    durable = f"ingest-test-{uuid.uuid4().hex[:8]}"
    task = asyncio.create_task(run_consumer(bus, ingestor, durable=durable, batch=50, filter_subject=f"{prefix}.>"))
    try:
        await bus.publish(f"{prefix}.pbx1", CallEvent(**event(1)), type="calls.event")
        await bus.js.publish(f"{prefix}.pbx1", orjson.dumps(event(2)))
        await bus.js.publish(f"{prefix}.pbx1", b"not json")
        await bus.js.publish(f"{prefix}.pbx1", orjson.dumps(event(3, caller_number="0")))
        assert await _until(db, "SELECT count(*) FROM calls", 2) == 2
        assert await _until(db, "SELECT count(*) FROM dead_letters", 2) == 2
        assert await scalar(db, "SELECT string_agg(reason, ',' ORDER BY position) FROM dead_letters") == (
            "malformed_json,invalid_caller_number"
        )
        assert await scalar(db, "SELECT count(*) FROM calls WHERE source = 'nats'") == 2
        # an integrator re-sending the same event changes nothing
        await bus.js.publish(f"{prefix}.pbx1", orjson.dumps(event(2)))
        await bus.js.publish(f"{prefix}.pbx1", orjson.dumps(event(4)))
        assert await _until(db, "SELECT count(*) FROM calls", 3) == 3
        assert await scalar(db, "SELECT max(version) FROM calls") == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await bus.js.delete_consumer(STREAM, durable)
