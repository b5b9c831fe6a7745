"""The one bus client: typed envelopes, request/reply, streamed replies, JetStream facts and consumers."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import nats
import orjson
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StreamConfig
from nats.js.errors import NotFoundError
from pydantic import BaseModel, Field, ValidationError

from schleuse_common import metrics, tracing
from schleuse_common.auth import Actor
from schleuse_common.ids import new_id, utcnow

log = structlog.get_logger("schleuse.bus")

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

STREAM_HEADER = "Schleuse-Stream"  # chunk | end | error on streamed replies
ERROR_HEADER = "Schleuse-Error"


class Envelope(BaseModel, Generic[T]):
    """Every message on the bus: idempotency id, type, version, time, trace, actor and the payload."""

    id: str = Field(default_factory=new_id)
    type: str
    version: int = 1
    occurred_at: datetime = Field(default_factory=utcnow)
    trace_id: str | None = None
    actor: Actor | None = None
    data: T


class ErrorBody(BaseModel):
    """The typed error envelope of request/reply: a stable code, a safe message and an HTTP-like status."""

    code: str
    message: str
    status: int = 500
    retry_after: float | None = None


class BusError(Exception):
    """A failure that crosses the bus; `status` maps to HTTP at the gateway."""

    def __init__(self, code: str, message: str, status: int = 500, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after

    def body(self) -> ErrorBody:
        """The error as it travels."""
        return ErrorBody(code=self.code, message=self.message, status=self.status, retry_after=self.retry_after)

    @classmethod
    def from_body(cls, body: ErrorBody) -> BusError:
        """Rebuild the exception on the caller's side."""
        return cls(body.code, body.message, body.status, body.retry_after)


class Unavailable(BusError):
    """Nobody answers a subject, or not in time."""


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream the platform relies on."""

    name: str
    subjects: list[str]
    max_age_s: float = 7 * 24 * 3600
    description: str = ""


# Request subjects (`chat.turn`) must not be captured by a stream, so CHAT lists its fact subjects.
STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("CHAT", ["chat.message.>", "chat.turn.>", "chat.thread.>", "chat.feedback.>", "chat.dataset.>"]),
    StreamSpec("USAGE", ["usage.>"]),
    StreamSpec("POLICY", ["policy.>"]),
    StreamSpec("AUDIT", ["audit.>"], max_age_s=400 * 24 * 3600),
    StreamSpec("CALLS", ["calls.events.>", "calls.changed.>"]),
    StreamSpec("DSR", ["dsr.>"]),
    StreamSpec("DEADLETTER", ["deadletter.>"], max_age_s=30 * 24 * 3600),
)

Handler = Callable[[Envelope[T]], Awaitable[BaseModel]]
StreamHandler = Callable[[Envelope[T]], AsyncIterator[BaseModel]]
FactHandler = Callable[[Envelope[T]], Awaitable[None]]
BatchHandler = Callable[[list[Envelope[T]]], Awaitable[None]]


@dataclass
class Bus:
    """A connected NATS client with the platform's conventions; create with `await Bus.connect(...)`."""

    nc: NATS
    js: JetStreamContext
    name: str
    actor_key: bytes | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _subs: list[Subscription] = field(default_factory=list)
    _pulls: list[Any] = field(default_factory=list)
    _streams: dict[str, asyncio.Queue[Msg]] = field(default_factory=dict)
    _stream_prefix: str | None = None
    _envelope_types: dict[type[BaseModel], type[Envelope[Any]]] = field(default_factory=dict)

    @classmethod
    async def connect(cls, url: str, name: str, *, actor_key: bytes | None = None) -> Bus:
        """Connect with endless reconnects; `actor_key` makes served handlers verify actor signatures."""

        async def on_error(e: Exception) -> None:
            log.warning("nats.error", error=type(e).__name__)

        async def on_disconnect() -> None:
            log.warning("nats.disconnected")

        async def on_reconnect() -> None:
            log.info("nats.reconnected")

        nc = await nats.connect(
            url,
            name=name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            drain_timeout=5,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
        )
        return cls(nc=nc, js=nc.jetstream(), name=name, actor_key=actor_key)

    @property
    def connected(self) -> bool:
        """True while the NATS connection is up."""
        return bool(self.nc.is_connected)

    async def close(self) -> None:
        """Stop consumers, drain subscriptions, close the connection."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for psub in self._pulls:  # a pull subscription with no fetch waiting has nothing to drain
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
        if not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.drain()

    # -- envelopes -----------------------------------------------------------------------

    def _envelope_of(self, model: type[T]) -> type[Envelope[T]]:
        cached = self._envelope_types.get(model)
        if cached is None:
            cached = Envelope[model]  # type: ignore[valid-type]
            self._envelope_types[model] = cached
        return cached

    def envelope(self, data: BaseModel, *, type: str, actor: Actor | None, id: str | None = None) -> bytes:
        """Wrap `data` in an envelope and encode it."""
        env = Envelope[BaseModel](
            id=id or new_id(), type=type, actor=actor, trace_id=tracing.current_trace_id(), data=data
        )
        return env.model_dump_json(serialize_as_any=True).encode()

    def _open(self, raw: bytes, model: type[T]) -> Envelope[T]:
        env = self._envelope_of(model).model_validate_json(raw)
        if self.actor_key is not None and env.actor is not None and not env.actor.verify(self.actor_key):
            raise BusError("actor_forged", "actor signature invalid", 401)
        return env

    # -- request / reply -----------------------------------------------------------------

    async def request(
        self,
        subject: str,
        data: BaseModel,
        reply_model: type[R],
        *,
        actor: Actor | None = None,
        timeout: float = 5.0,
    ) -> R:
        """Ask `subject` and wait for one typed answer; raises BusError (or Unavailable)."""
        headers = tracing.inject_headers({})
        payload = self.envelope(data, type=subject, actor=actor)
        try:
            msg = await self.nc.request(subject, payload, timeout=timeout, headers=headers)
        except NoRespondersError as e:
            raise Unavailable("unavailable", f"no service answers {subject}", 503) from e
        except NatsTimeoutError as e:
            raise Unavailable("timeout", f"{subject} did not answer within {timeout:g}s", 504) from e
        return _decode_reply(msg, reply_model)

    async def serve(
        self, subject: str, request_model: type[T], handler: Handler[T], *, queue: str | None = None
    ) -> None:
        """Answer `subject` with `handler` (one answer per request); errors become error envelopes."""

        async def on_msg(msg: Msg) -> None:
            with metrics.timed_handler(subject):
                try:
                    env = self._open(msg.data, request_model)
                    with tracing.span_from_headers(subject, msg.headers):
                        result = await handler(env)
                    await msg.respond(result.model_dump_json().encode())
                except BusError as e:
                    await _respond_error(msg, e)
                except ValidationError as e:
                    await _respond_error(msg, BusError("invalid_request", _validation_summary(e), 422))
                except Exception as e:
                    log.exception("bus.handler_failed", subject=subject, error=type(e).__name__)
                    await _respond_error(msg, BusError("internal", "internal error", 500))

        self._subs.append(await self.nc.subscribe(subject, queue=queue or subject, cb=_concurrently(on_msg)))

    # -- streamed replies ----------------------------------------------------------------

    async def request_stream(
        self,
        subject: str,
        data: BaseModel,
        chunk_model: type[R],
        *,
        actor: Actor | None = None,
        timeout: float = 30.0,
        idle_timeout: float = 60.0,
        coalesce: Callable[[R, R], R | None] | None = None,
    ) -> AsyncIterator[R]:
        """Ask `subject` for a streamed answer; yields typed chunks until the end marker.

        With `coalesce`, chunks that have already arrived together are merged (when it returns a chunk)
        before they are yielded: under load fewer, larger pieces travel on, and nothing waits for them.
        """
        token = secrets.token_hex(8)
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._streams[token] = queue
        try:
            inbox = await self._stream_inbox(token)
            headers = tracing.inject_headers({})
            await self.nc.publish(subject, self.envelope(data, type=subject, actor=actor), reply=inbox, headers=headers)
            first = True
            held: R | None = None
            while True:
                if held is not None and queue.empty():
                    yield held
                    held = None
                try:
                    msg = (
                        queue.get_nowait()
                        if not queue.empty()
                        else await asyncio.wait_for(queue.get(), timeout if first else idle_timeout)
                    )
                except TimeoutError as e:
                    if first and not await self._has_responders(subject):
                        raise Unavailable("unavailable", f"no service answers {subject}", 503) from e
                    raise Unavailable("timeout", f"{subject} stopped answering", 504) from e
                first = False
                headers = msg.headers or {}
                if headers.get("Status") == "503":
                    raise Unavailable("unavailable", f"no service answers {subject}", 503)
                kind = headers.get(STREAM_HEADER, "chunk")
                if kind in ("end", "error") and held is not None:
                    yield held
                    held = None
                if kind == "end":
                    return
                if kind == "error":
                    raise BusError.from_body(ErrorBody.model_validate_json(msg.data))
                chunk = chunk_model.model_validate_json(msg.data)
                merged = coalesce(held, chunk) if held is not None and coalesce is not None else None
                if merged is None and held is not None:
                    yield held
                held = chunk if merged is None else merged
        finally:
            self._streams.pop(token, None)

    async def _stream_inbox(self, token: str) -> str:
        """One wildcard inbox subscription for every streamed reply (no SUB/UNSUB per request)."""
        if self._stream_prefix is None:
            prefix = self.nc.new_inbox()

            async def route(msg: Msg) -> None:
                queue = self._streams.get(msg.subject.rpartition(".")[2])
                if queue is not None:  # replies to a stream already given up are dropped
                    queue.put_nowait(msg)

            self._subs.append(await self.nc.subscribe(f"{prefix}.*", cb=route))
            self._stream_prefix = prefix
        return f"{self._stream_prefix}.{token}"

    async def _has_responders(self, subject: str) -> bool:
        try:
            await self.nc.request(subject, b"", timeout=0.2)
        except NoRespondersError:
            return False
        except Exception:
            return True
        return True

    async def serve_stream(
        self, subject: str, request_model: type[T], handler: StreamHandler[T], *, queue: str | None = None
    ) -> None:
        """Answer `subject` with a stream of chunks from `handler`, then an end or error marker."""

        async def on_msg(msg: Msg) -> None:
            if not msg.reply:
                return
            if not msg.data:  # responder probe from request_stream
                await msg.respond(b"")
                return
            with metrics.timed_handler(subject):
                try:
                    env = self._open(msg.data, request_model)
                    with tracing.span_from_headers(subject, msg.headers):
                        async for chunk in handler(env):
                            await self.nc.publish(msg.reply, chunk.model_dump_json().encode())
                    await self.nc.publish(msg.reply, b"", headers={STREAM_HEADER: "end"})
                except BusError as e:
                    await _stream_error(self.nc, msg.reply, e)
                except ValidationError as e:
                    await _stream_error(self.nc, msg.reply, BusError("invalid_request", _validation_summary(e), 422))
                except Exception as e:
                    log.exception("bus.stream_handler_failed", subject=subject, error=type(e).__name__)
                    await _stream_error(self.nc, msg.reply, BusError("internal", "internal error", 500))

        self._subs.append(await self.nc.subscribe(subject, queue=queue or subject, cb=_concurrently(on_msg)))

    # -- JetStream facts -----------------------------------------------------------------

    async def ensure_streams(self, specs: tuple[StreamSpec, ...] = STREAMS) -> None:
        """Create or update the platform's streams (idempotent; safe under concurrent starts)."""
        for spec in specs:
            config = StreamConfig(
                name=spec.name,
                subjects=spec.subjects,
                retention=RetentionPolicy.LIMITS,
                max_age=spec.max_age_s,
                duplicate_window=120.0,
                description=spec.description or None,
            )
            try:
                await self.js.stream_info(spec.name)
                await self.js.update_stream(config)
            except NotFoundError:
                try:
                    await self.js.add_stream(config)
                except Exception:  # another service created it in between
                    await self.js.update_stream(config)

    async def publish(
        self,
        subject: str,
        data: BaseModel,
        *,
        type: str | None = None,
        actor: Actor | None = None,
        id: str | None = None,
        timeout: float = 5.0,
    ) -> str:
        """Publish a fact to JetStream and wait for the stream's ack; returns the envelope id."""
        env_id = id or new_id()
        headers = tracing.inject_headers({"Nats-Msg-Id": env_id})
        payload = self.envelope(data, type=type or subject, actor=actor, id=env_id)
        await self.js.publish(subject, payload, headers=headers, timeout=timeout)
        return env_id

    async def consume(
        self,
        *,
        stream: str,
        durable: str,
        filter_subject: str,
        data_model: type[T],
        handler: FactHandler[T],
        max_deliver: int = 5,
        batch: int = 64,
    ) -> None:
        """Run a durable pull consumer in the background; poison messages go to `deadletter.<stream>.<durable>`.

        Handlers must be idempotent on `envelope.id` (redelivery happens after a crash before ack).
        """

        async def on_batch(msgs: list[Msg]) -> None:
            for msg in msgs:
                await self._deliver(msg, data_model, handler, max_deliver, stream, durable)

        await self._pull(stream, durable, filter_subject, max_deliver, batch, on_batch)

    async def consume_batches(
        self,
        *,
        stream: str,
        durable: str,
        filter_subject: str,
        data_model: type[T],
        handler: BatchHandler[T],
        max_deliver: int = 5,
        batch: int = 256,
    ) -> None:
        """Like `consume`, but hands over everything fetched at once (one transaction for many facts).

        If a batch fails, its messages are retried one by one, so a poison message cannot hold the others back.
        """

        async def one(env: Envelope[T]) -> None:
            await handler([env])

        async def on_batch(msgs: list[Msg]) -> None:
            opened: list[tuple[Msg, Envelope[T]]] = []
            for msg in msgs:
                try:
                    opened.append((msg, self._open(msg.data, data_model)))
                except (ValidationError, BusError, ValueError) as e:
                    await self._dead_letter(msg, stream, durable, f"invalid envelope: {_reason(e)}")
            if not opened:
                return
            try:
                with metrics.timed_handler(f"consume:{durable}"):
                    await handler([env for _, env in opened])
            except Exception as e:
                log.warning("bus.batch_failed", durable=durable, size=len(opened), error=type(e).__name__)
                for msg, _ in opened:
                    await self._deliver(msg, data_model, one, max_deliver, stream, durable)
                return
            for msg, _ in opened:
                await msg.ack()

        await self._pull(stream, durable, filter_subject, max_deliver, batch, on_batch)

    async def _pull(
        self,
        stream: str,
        durable: str,
        filter_subject: str,
        max_deliver: int,
        batch: int,
        on_batch: Callable[[list[Msg]], Awaitable[None]],
    ) -> None:
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_deliver=max_deliver + 1,  # one spare delivery to move the message to the dead letters
            ack_wait=30.0,
            filter_subject=filter_subject,
        )
        psub = await self.js.pull_subscribe(filter_subject, durable=durable, stream=stream, config=config)
        self._pulls.append(psub)

        async def loop() -> None:
            while True:
                try:
                    msgs = await psub.fetch(batch, timeout=1.0)
                except (NatsTimeoutError, TimeoutError):
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    log.warning("bus.fetch_failed", stream=stream, durable=durable, error=type(e).__name__)
                    await asyncio.sleep(0.5)
                    continue
                await on_batch(msgs)

        self._tasks.append(asyncio.create_task(loop(), name=f"consume:{durable}"))

    async def _deliver(
        self,
        msg: Msg,
        data_model: type[T],
        handler: FactHandler[T],
        max_deliver: int,
        stream: str,
        durable: str,
    ) -> None:
        try:
            env = self._open(msg.data, data_model)
        except (ValidationError, BusError, ValueError) as e:
            await self._dead_letter(msg, stream, durable, f"invalid envelope: {_reason(e)}")
            return
        try:
            with (
                metrics.timed_handler(f"consume:{durable}"),
                tracing.span_from_headers(msg.subject, msg.headers),
            ):
                await handler(env)
        except BusError as e:
            if e.status < 500:  # the message itself is wrong: retrying cannot help
                await self._dead_letter(msg, stream, durable, f"{e.code}: {e.message}")
                return
            await self._retry_or_dead(msg, stream, durable, f"{e.code}: {e.message}", max_deliver)
        except Exception as e:
            log.warning("bus.consumer_failed", durable=durable, error=type(e).__name__)
            await self._retry_or_dead(msg, stream, durable, f"handler failed: {type(e).__name__}", max_deliver)
        else:
            await msg.ack()

    async def _retry_or_dead(self, msg: Msg, stream: str, durable: str, reason: str, max_deliver: int) -> None:
        delivered = msg.metadata.num_delivered
        if delivered >= max_deliver:
            await self._dead_letter(msg, stream, durable, f"{reason} (after {delivered} deliveries)")
            return
        delay = min(30.0, 0.2 * 2 ** (delivered - 1)) * (0.5 + random.random())
        await msg.nak(delay=delay)

    async def _dead_letter(self, msg: Msg, stream: str, durable: str, reason: str) -> None:
        dead_subject = f"deadletter.{stream}.{durable}"
        letter = DeadLetter(
            reason=reason,
            subject=msg.subject,
            stream_sequence=msg.metadata.sequence.stream,
            payload=msg.data.decode("utf-8", errors="replace"),
        )
        await self.publish(dead_subject, letter, type="deadletter")
        metrics.DEAD_LETTERS.labels(subject=dead_subject).inc()
        log.warning("bus.dead_letter", subject=dead_subject, reason=reason.split(":")[0])
        await msg.term()


class DeadLetter(BaseModel):
    """A message no consumer could process, kept with the reason (payload as it arrived)."""

    reason: str
    subject: str
    stream_sequence: int
    payload: str


_inflight: set[asyncio.Task[None]] = set()


def _concurrently(on_msg: Callable[[Msg], Coroutine[Any, Any, None]]) -> Callable[[Msg], Awaitable[None]]:
    """nats-py awaits a subscription's callback before the next message: run each in its own task instead,
    so a handler waiting for the database or another service never holds up the requests behind it."""

    async def spawn(msg: Msg) -> None:
        task = asyncio.create_task(on_msg(msg))
        _inflight.add(task)
        task.add_done_callback(_inflight.discard)

    return spawn


def _decode_reply(msg: Msg, reply_model: type[R]) -> R:
    if msg.headers and msg.headers.get(ERROR_HEADER):
        raise BusError.from_body(ErrorBody.model_validate_json(msg.data))
    if msg.headers and msg.headers.get("Status") == "503":
        raise Unavailable("unavailable", "no service answers", 503)
    return reply_model.model_validate_json(msg.data)


async def _respond_error(msg: Msg, error: BusError) -> None:
    if msg.reply:
        await msg._client.publish(msg.reply, error.body().model_dump_json().encode(), headers={ERROR_HEADER: "1"})


async def _stream_error(nc: NATS, reply: str, error: BusError) -> None:
    await nc.publish(reply, error.body().model_dump_json().encode(), headers={STREAM_HEADER: "error"})


def _validation_summary(e: ValidationError) -> str:
    """Field locations and messages only: input values may carry PII and never travel in errors."""
    parts = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:5]]
    return "; ".join(parts)


def _reason(e: Exception) -> str:
    return _validation_summary(e) if isinstance(e, ValidationError) else str(e)[:200]


def dumps(value: Any) -> bytes:
    """Fast JSON for bus payloads that are not pydantic models."""
    return orjson.dumps(value)
