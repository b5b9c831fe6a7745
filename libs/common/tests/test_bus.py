"""The bus against the real NATS: request/reply, streamed replies, errors, JetStream consumers, dead letters."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError, DeadLetter, Envelope, StreamSpec, Unavailable
from schleuse_common.ids import new_id


class Ping(BaseModel):
    n: int


class Pong(BaseModel):
    n: int
    actor_id: str | None = None


async def test_request_reply_carries_typed_data_and_actor(bus: Bus, actor_key: bytes) -> None:
    subject = f"test.ping.{new_id()}"

    async def handle(env: Envelope[Ping]) -> Pong:
        return Pong(n=env.data.n + 1, actor_id=env.actor.id if env.actor else None)

    await bus.serve(subject, Ping, handle)
    actor = Actor(id="u1", roles=["user"]).signed(actor_key)
    reply = await bus.request(subject, Ping(n=41), Pong, actor=actor)
    assert reply == Pong(n=42, actor_id="u1")


async def test_forged_actor_is_refused(bus: Bus, actor_key: bytes) -> None:
    subject = f"test.forged.{new_id()}"

    async def handle(env: Envelope[Ping]) -> Pong:
        return Pong(n=env.data.n)

    await bus.serve(subject, Ping, handle)
    forged = Actor(id="u1", roles=["user"]).signed(actor_key).model_copy(update={"roles": ["admin"]})
    with pytest.raises(BusError) as err:
        await bus.request(subject, Ping(n=1), Pong, actor=forged)
    assert err.value.status == 401


async def test_handler_errors_travel_typed(bus: Bus) -> None:
    subject = f"test.err.{new_id()}"

    async def handle(env: Envelope[Ping]) -> Pong:
        raise BusError("budget_exceeded", "budget Recht exhausted", 402)

    await bus.serve(subject, Ping, handle)
    with pytest.raises(BusError) as err:
        await bus.request(subject, Ping(n=1), Pong)
    assert (err.value.code, err.value.status) == ("budget_exceeded", 402)


class Named(BaseModel):
    email: str
    age: int


async def test_invalid_request_gets_422_without_values(bus: Bus) -> None:
    subject = f"test.invalid.{new_id()}"

    async def handle(env: Envelope[Named]) -> Pong:
        return Pong(n=env.data.age)

    await bus.serve(subject, Named, handle)

    class Wrong(BaseModel):
        email: str
        age: str

    with pytest.raises(BusError) as err:
        await bus.request(subject, Wrong(email="max.mustermann@example.de", age="zwölf"), Pong)
    assert err.value.status == 422
    assert "data.age" in err.value.message
    assert "zwölf" not in err.value.message and "mustermann" not in err.value.message


async def test_no_responder_is_unavailable(bus: Bus) -> None:
    with pytest.raises(Unavailable) as err:
        await bus.request(f"test.nobody.{new_id()}", Ping(n=1), Pong, timeout=1)
    assert err.value.status == 503


async def test_stream_yields_chunks_then_ends(bus: Bus) -> None:
    subject = f"test.stream.{new_id()}"

    async def handle(env: Envelope[Ping]) -> AsyncIterator[Pong]:
        for i in range(env.data.n):
            yield Pong(n=i)

    await bus.serve_stream(subject, Ping, handle)
    got = [c.n async for c in bus.request_stream(subject, Ping(n=5), Pong)]
    assert got == [0, 1, 2, 3, 4]


async def test_stream_error_after_chunks(bus: Bus) -> None:
    subject = f"test.streamerr.{new_id()}"

    async def handle(env: Envelope[Ping]) -> AsyncIterator[Pong]:
        yield Pong(n=1)
        raise BusError("upstream_failed", "provider answered 500", 502)

    await bus.serve_stream(subject, Ping, handle)
    got: list[int] = []
    with pytest.raises(BusError) as err:
        async for c in bus.request_stream(subject, Ping(n=1), Pong):
            got.append(c.n)
    assert got == [1] and err.value.status == 502


async def test_stream_without_responder_is_unavailable(bus: Bus) -> None:
    with pytest.raises(Unavailable):
        async for _ in bus.request_stream(f"test.nostream.{new_id()}", Ping(n=1), Pong, timeout=1):
            pass


async def test_consumer_processes_retries_and_dead_letters(bus: Bus) -> None:
    run = new_id().replace("-", "")[:12]
    stream = f"TEST{run}"
    await bus.ensure_streams((StreamSpec(stream, [f"testfacts.{run}.>"]), StreamSpec("DEADLETTER", ["deadletter.>"])))
    seen: list[int] = []
    attempts: dict[int, int] = {}

    async def handle(env: Envelope[Ping]) -> None:
        attempts[env.data.n] = attempts.get(env.data.n, 0) + 1
        if env.data.n == 13:
            raise RuntimeError("always fails")
        if env.data.n == 7 and attempts[7] < 2:
            raise RuntimeError("fails once")
        seen.append(env.data.n)

    dead: list[DeadLetter] = []

    async def on_dead(env: Envelope[DeadLetter]) -> None:
        dead.append(env.data)

    await bus.consume(
        stream=stream,
        durable=f"d{run}",
        filter_subject=f"testfacts.{run}.>",
        data_model=Ping,
        handler=handle,
        max_deliver=3,
    )
    await bus.consume(
        stream="DEADLETTER",
        durable=f"dl{run}",
        filter_subject=f"deadletter.{stream}.>",
        data_model=DeadLetter,
        handler=on_dead,
    )
    for n in (1, 7, 13):
        await bus.publish(f"testfacts.{run}.x", Ping(n=n))
    await bus.nc.publish(f"testfacts.{run}.x", b"not json")
    for _ in range(200):
        if sorted(seen) == [1, 7] and len(dead) == 2:
            break
        await asyncio.sleep(0.05)
    assert sorted(seen) == [1, 7]
    assert attempts[13] == 3
    reasons = sorted(d.reason.split(":")[0] for d in dead)
    assert reasons == ["handler failed", "invalid envelope"]
    assert any(d.payload == "not json" for d in dead)


async def test_publish_is_deduplicated_on_envelope_id(bus: Bus) -> None:
    run = new_id().replace("-", "")[:12]
    stream = f"TESTDUP{run}"
    await bus.ensure_streams((StreamSpec(stream, [f"dupfacts.{run}"]),))
    env_id = new_id()
    await bus.publish(f"dupfacts.{run}", Ping(n=1), id=env_id)
    await bus.publish(f"dupfacts.{run}", Ping(n=1), id=env_id)
    info = await bus.js.stream_info(stream)
    assert info.state.messages == 1


async def test_batch_consumer_hands_over_many_and_isolates_a_poison_message(bus: Bus) -> None:
    run = new_id().replace("-", "")[:12]
    stream = f"TESTB{run}"
    await bus.ensure_streams((StreamSpec(stream, [f"batchfacts.{run}.>"]), StreamSpec("DEADLETTER", ["deadletter.>"])))
    for n in range(20):
        await bus.publish(f"batchfacts.{run}.x", Ping(n=n))
    batches: list[list[int]] = []
    stored: set[int] = set()

    async def handle(envs: list[Envelope[Ping]]) -> None:
        ns = [e.data.n for e in envs]
        batches.append(ns)
        if 13 in ns:
            raise RuntimeError("poison")
        stored.update(ns)

    await bus.consume_batches(
        stream=stream,
        durable=f"b{run}",
        filter_subject=f"batchfacts.{run}.>",
        data_model=Ping,
        handler=handle,
        max_deliver=2,
    )
    for _ in range(200):
        if stored == set(range(20)) - {13}:
            break
        await asyncio.sleep(0.05)
    assert stored == set(range(20)) - {13}
    assert len(batches[0]) > 1  # handed over together, not one by one
    info = await bus.js.consumer_info(stream, f"b{run}")
    for _ in range(100):
        info = await bus.js.consumer_info(stream, f"b{run}")
        if info.num_ack_pending == 0 and info.num_pending == 0:
            break
        await asyncio.sleep(0.05)
    assert info.num_ack_pending == 0 and info.num_pending == 0  # the poison one went to the dead letters


async def test_stream_coalesces_only_what_arrived_together(bus: Bus) -> None:
    subject = f"test.coalesce.{new_id()}"
    release = asyncio.Event()

    async def handle(env: Envelope[Ping]) -> AsyncIterator[Pong]:
        yield Pong(n=1)
        await release.wait()  # the first piece travels alone: nothing else had arrived
        for n in (2, 3, 4):
            yield Pong(n=n)

    def add(first: Pong, then: Pong) -> Pong | None:
        return None if then.n == 4 else Pong(n=first.n * 10 + then.n)

    await bus.serve_stream(subject, Ping, handle)
    got: list[int] = []
    async for chunk in bus.request_stream(subject, Ping(n=0), Pong, coalesce=add):
        got.append(chunk.n)
        if chunk.n == 1:
            release.set()
            await asyncio.sleep(0.1)  # let 2, 3 and 4 arrive together
    assert got == [1, 23, 4]


async def test_a_slow_request_does_not_hold_up_the_next(bus: Bus) -> None:
    subject = f"test.concurrent.{new_id()}"
    slow_started = asyncio.Event()
    release = asyncio.Event()

    async def handle(env: Envelope[Ping]) -> Pong:
        if env.data.n == 1:
            slow_started.set()
            await release.wait()  # e.g. waiting for the database
        return Pong(n=env.data.n)

    await bus.serve(subject, Ping, handle)
    slow = asyncio.create_task(bus.request(subject, Ping(n=1), Pong))
    await slow_started.wait()
    assert await bus.request(subject, Ping(n=2), Pong, timeout=2) == Pong(n=2)
    release.set()
    assert await slow == Pong(n=1)
