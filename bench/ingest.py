"""Ingest benchmark: file -> calls throughput, list/search latency at N calls, file write -> calls.changed.

Usage: .venv/bin/python bench/ingest.py [--calls 1000000] [--database-url ...] [--nats-url ...]
Uses its own database (default `schleuse_bench`, recreated) on the configured Postgres and the configured
NATS. Synthetic German callers via Faker de_DE; ~1 % of lines are invalid on purpose (dead letters).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from project_env import use_project_venv

use_project_venv()

import orjson
import phonenumbers
import sqlalchemy as sa
import structlog
from faker import Faker

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, Envelope
from schleuse_common.contracts import calls as c
from schleuse_common.crypto import load_kek
from schleuse_common.db import Database, ensure_database, run_migrations
from schleuse_common.settings import InfraSettings
from schleuse_ingest.domain.access import AccessPolicy
from schleuse_ingest.handlers import CallsApi, RetentionSource
from schleuse_ingest.ingestor import Ingestor
from schleuse_ingest.keys import CallKeyring
from schleuse_ingest.tailer import Tailer

MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "ingest" / "migrations"
TOPICS = [
    "Rezept für {m} abholen",
    "Terminvereinbarung {f}",
    "Rückfrage zur Rechnung vom {d}",
    "Befund besprechen, Rückruf erbeten",
    "Überweisung zum {f} benötigt",
    "Krankschreibung verlängern",
    "Impftermin {v} vereinbaren",
    "Beschwerde über Wartezeit",
    "Adressänderung mitteilen",
    "Frage zur Versichertenkarte",
    "Laborwerte nachfragen",
    "Termin absagen wegen {g}",
]
FACH = ["Kardiologen", "Orthopäden", "Hautarzt", "Augenarzt", "Radiologen", "Neurologen"]
MEDS = ["Ramipril", "Metformin", "Ibuprofen", "L-Thyroxin", "Pantoprazol", "Simvastatin"]
VACC = ["Grippe", "Tetanus", "FSME", "Pneumokokken"]
GRUND = ["Krankheit", "Urlaub", "Arbeit", "Kinderbetreuung"]


def pools(fake: Faker, callers: int) -> list[tuple[str, str, str]]:
    """Callers: valid German numbers, names and dates of birth (callers call more than once)."""
    out: list[tuple[str, str, str]] = []
    while len(out) < callers:
        number = fake.phone_number()
        try:
            ok = phonenumbers.is_valid_number(phonenumbers.parse(number, "DE"))
        except phonenumbers.NumberParseException:
            ok = False
        if ok:
            dob = fake.date_of_birth(minimum_age=1, maximum_age=95)
            fmt = dob.strftime("%d.%m.%Y") if len(out) % 2 else dob.isoformat()
            out.append((number, fake.name(), fmt))
    return out


def topic(rng: random.Random) -> str:
    return rng.choice(TOPICS).format(
        m=rng.choice(MEDS),
        f=rng.choice(FACH),
        d=f"{rng.randint(1, 28)}.{rng.randint(1, 12)}.",
        v=rng.choice(VACC),
        g=rng.choice(GRUND),
    )


def generate(n: int, callers: list[tuple[str, str, str]], now: datetime, seed: int = 1) -> dict[str, list[bytes]]:
    """JSONL lines per daily file over the last 29 days, ~1 % invalid."""
    rng = random.Random(seed)
    files: dict[str, list[bytes]] = {}
    span = 29 * 24 * 3600
    for i in range(n):
        at = now - timedelta(seconds=rng.random() * span)
        number, name, dob = rng.choice(callers)
        ev: dict[str, Any] = {
            "event_id": f"pbx-{seed}-{i}",
            "received_at": at.astimezone().isoformat(timespec="seconds") if i % 3 else at.isoformat(),
            "caller_number": number if i % 100 else "0000",
            "caller_name": name,
            "date_of_birth": dob,
            "topic": topic(rng),
            "priority": rng.choices(["normal", "hoch", "dringend", "niedrig"], [70, 20, 5, 5])[0],
            "source": "pbx-zentrale",
            "extension": str(rng.randint(200, 260)),
        }
        day = at.astimezone().date().isoformat()
        files.setdefault(f"calls-{day}.jsonl", []).append(orjson.dumps(ev) + b"\n")
    return files


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(label: str, samples: list[float]) -> None:
    print(
        f"  {label:<34} p50 {statistics.median(samples) * 1000:7.2f} ms   p95 {pct(samples, 95) * 1000:7.2f} ms"
        f"   max {max(samples) * 1000:7.2f} ms  (n={len(samples)})"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--callers", type=int, default=50_000)
    parser.add_argument("--database", default="schleuse_bench")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument("--no-vacuum", action="store_true", help="skip the second round of queries after VACUUM")
    args = parser.parse_args()
    # ~1 % of the lines are dead letters on purpose; their warnings would drown the figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))

    infra = InfraSettings()
    base = infra.database_url.rsplit("/", 1)[0]
    url = f"{base}/{args.database}"
    engine = sa.create_engine(
        sa.engine.make_url(url.replace("postgresql://", "postgresql+psycopg://")).set(database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)'))
    engine.dispose()
    ensure_database(url)
    run_migrations(url, "ingest", MIGRATIONS)
    db = Database(url, "ingest", pool_size=4)
    bus = await Bus.connect(infra.nats_url, "schleuse-bench-ingest")
    await bus.ensure_streams()
    keyring = CallKeyring(load_kek(infra))
    ingestor = Ingestor(db, keyring, bus)
    now = datetime.now(UTC)

    print(f"Schleuse ingest benchmark: {args.calls:,} calls from {args.callers:,} callers ({load()})")
    t0 = time.perf_counter()
    fake = Faker("de_DE")
    Faker.seed(42)
    callers = pools(fake, args.callers)
    files = generate(args.calls, callers, now)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name, lines in files.items():
            (directory / name).write_bytes(b"".join(lines))
        print(f"  generated {args.calls:,} events in {len(files)} daily files in {time.perf_counter() - t0:.1f} s")

        tailer = Tailer(directory, db, ingestor, batch_lines=5000)
        t1 = time.perf_counter()
        lines = await tailer.poll()
        elapsed = time.perf_counter() - t1
        async with db.session() as s:
            stored = (await s.execute(sa.text("SELECT count(*) FROM calls"))).scalar_one()
            dead = (await s.execute(sa.text("SELECT count(*) FROM dead_letters"))).scalar_one()
        print(
            f"  ingest (file -> committed rows):   {lines / elapsed:10,.0f} events/s "
            f"({lines:,} lines in {elapsed:.1f} s; {stored:,} calls, {dead:,} dead letters)"
        )
        async with db.engine.connect() as conn:
            await conn.execute(sa.text("ANALYZE ingest.calls"))
            await conn.commit()

        await query_latencies(db, keyring, bus, args.queries, callers, "right after the bulk load")
        if not args.no_vacuum:
            # This dev server runs with autovacuum off; in production autovacuum vacuums a table after a
            # bulk insert (sets hint bits and the visibility map, merges the GIN pending list).
            t2 = time.perf_counter()
            async with db.engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await auto.execute(sa.text("VACUUM ingest.calls"))
            print(f"  VACUUM ingest.calls took {time.perf_counter() - t2:.1f} s")
            await query_latencies(db, keyring, bus, args.queries, callers, "after VACUUM (what autovacuum does)")
        await file_to_changed_latency(tailer, directory, bus, args.latency_samples)
    print(f"Done ({load()})")
    await bus.close()
    await db.dispose()


def load() -> str:
    """The machine's load average: the 2-core dev machine is shared, figures depend on it."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} cores"


async def query_latencies(db: Database, keyring: CallKeyring, bus: Bus, n: int, callers: list[Any], when: str) -> None:
    api = CallsApi(db, keyring, bus, AccessPolicy(), RetentionSource(30), Path("."))
    rng = random.Random(3)
    agent = Actor(id="bench-agent", roles=["agent"])
    dpo = Actor(id="bench-dpo", roles=["dpo"])

    async def time_list(req: c.ListCallsRequest, actor: Actor) -> float:
        started = time.perf_counter()
        await api.list_calls(Envelope[c.ListCallsRequest](type=c.CALLS_API_LIST, actor=actor, data=req))
        return time.perf_counter() - started

    cases: dict[str, Any] = {
        "list newest (masked)": lambda: (c.ListCallsRequest(), dpo),
        "list newest (unmasked, audited)": lambda: (c.ListCallsRequest(), agent),
        "filter status=NEW, priority sort": lambda: (c.ListCallsRequest(status=["NEW"], sort="priority"), dpo),
        "filter open + today": lambda: (c.ListCallsRequest(quick=["open", "today"]), dpo),
        "filter priority=urgent": lambda: (c.ListCallsRequest(priority=["urgent"]), dpo),
        "page 2 via cursor": None,
        "search number prefix": lambda: (c.ListCallsRequest(q=rng.choice(callers)[0][:9]), dpo),
        "search name": lambda: (c.ListCallsRequest(q=rng.choice(callers)[1].split()[-1]), dpo),
        "search topic words": lambda: (
            c.ListCallsRequest(
                q=rng.choice(["Rezept", "Befund", "Termin absagen", "Rechnung", "Überweisung Kardiologen"])
            ),
            dpo,
        ),
    }
    first = await api.list_calls(Envelope[c.ListCallsRequest](type="x", actor=dpo, data=c.ListCallsRequest()))
    print(
        f"Queries {when}, at {first.total:,}{'' if first.total_exact else '+'} visible calls "
        f"(each with total count, limit 50; {load()}):"
    )
    for label, make in cases.items():
        samples = []
        for _ in range(n):
            if make is None:
                req, actor = c.ListCallsRequest(cursor=first.next_cursor), dpo
            else:
                req, actor = make()
            samples.append(await time_list(req, actor))
        report(label, samples)


async def file_to_changed_latency(tailer: Tailer, directory: Path, bus: Bus, samples: int) -> None:
    task = asyncio.create_task(tailer.run(0.1))
    sub = await bus.nc.subscribe("calls.changed.created")
    await asyncio.sleep(0.5)
    today = datetime.now().date().isoformat()
    path = directory / f"calls-{today}.jsonl"
    latencies = []
    for i in range(samples):
        ev = {
            "event_id": f"live-{i}-{time.time_ns()}",
            "received_at": datetime.now(UTC).isoformat(),
            "caller_number": "0151 23456789",
            "caller_name": "Live Test",
            "topic": "Rückruf erbeten",
        }
        started = time.perf_counter()
        with path.open("ab") as f:
            f.write(orjson.dumps(ev) + b"\n")
        await sub.next_msg(timeout=10)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(random.random() * 0.2)
    task.cancel()
    await sub.unsubscribe()
    print("Live updates (tailer polls every 100 ms):")
    report("file write -> calls.changed", latencies)


if __name__ == "__main__":
    asyncio.run(main())
