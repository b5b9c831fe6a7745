"""JetStream consumer of `calls.events.>`: integrators' call events, batched like file lines."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import structlog
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from schleuse_common.bus import Bus
from schleuse_common.contracts.calls import CALLS_EVENTS
from schleuse_ingest.ingestor import Ingestor, RawEvent

log = structlog.get_logger("schleuse.ingest.consumer")
STREAM = "CALLS"
SOURCE = "nats"


def decode_message(msg_data: bytes) -> dict[str, Any] | None:
    """The event object of a message: the `data` of a Schleuse envelope, or a bare event object."""
    try:
        value = orjson.loads(msg_data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    if "data" in value and "type" in value and isinstance(value["data"], dict):
        data: dict[str, Any] = value["data"]
        return data
    return value


async def run_consumer(
    bus: Bus, ingestor: Ingestor, *, durable: str, batch: int, filter_subject: str = CALLS_EVENTS
) -> None:
    """Fetch, validate and commit batches; ack only after commit, so nothing is lost or doubled."""
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=60.0,
        filter_subject=filter_subject,
    )
    psub = await bus.js.pull_subscribe(filter_subject, durable=durable, stream=STREAM, config=config)
    try:
        while True:
            try:
                msgs = await psub.fetch(batch, timeout=1.0)
            except NatsTimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("consumer.fetch_failed", error=type(e).__name__)
                await asyncio.sleep(0.5)
                continue
            await _process(ingestor, msgs)
    finally:
        with contextlib.suppress(Exception):
            await psub.unsubscribe()


async def _process(ingestor: Ingestor, msgs: list[Msg]) -> None:
    events = []
    for msg in msgs:
        decoded = decode_message(msg.data)
        position = msg.metadata.sequence.stream
        events.append(RawEvent(msg.data, msg.subject, position, SOURCE, decoded))
    try:
        await ingestor.ingest(events, kind="nats")
    except asyncio.CancelledError:
        raise
    except Exception as e:  # not committed: let JetStream redeliver the whole batch later
        log.warning("consumer.batch_failed", error=type(e).__name__, size=len(msgs))
        for msg in msgs:
            await msg.nak(delay=2.0)
        return
    for msg in msgs:
        await msg.ack()
