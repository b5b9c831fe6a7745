"""Tailing JSONL files against the real Postgres: offsets, partial lines, crash, rotation, truncation, replay."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import orjson
import pytest

from schleuse_common.bus import Bus
from schleuse_common.contracts.calls import CallsChanged
from schleuse_common.db import Database
from schleuse_ingest import store
from schleuse_ingest.ingestor import Ingestor
from schleuse_ingest.keys import CallKeyring
from schleuse_ingest.tailer import Tailer

from .helpers import event, line, rows, scalar

DAY = "calls-2024-05-02.jsonl"


async def test_partial_last_line_waits_for_its_newline(tailer: Tailer, calls_dir: Path, db: Database) -> None:
    path = calls_dir / DAY
    full = line(event(1)) + line(event(2))
    third = line(event(3))
    path.write_bytes(full + third[:20])
    await tailer.poll()
    assert await scalar(db, "SELECT count(*) FROM calls") == 2
    assert await scalar(db, "SELECT byte_offset FROM file_offsets WHERE file_name = :n", n=DAY) == len(full)
    with path.open("ab") as f:
        f.write(third[20:])
    await tailer.poll()
    assert await scalar(db, "SELECT count(*) FROM calls") == 3
    assert await scalar(db, "SELECT byte_offset FROM file_offsets") == len(full + third)


async def test_crash_before_commit_neither_loses_nor_duplicates(
    calls_dir: Path, db: Database, ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [line(event(i, event_id=None, topic=f"Anliegen {i}")) for i in range(5)]
    (calls_dir / DAY).write_bytes(b"".join(lines))
    first_batch_end = sum(len(x) for x in lines[:3])
    real_save = store.save_cursor

    async def crash_on_second_batch(session, cursor):  # type: ignore[no-untyped-def]
        await real_save(session, cursor)
        if cursor.offset > first_batch_end:
            raise RuntimeError("process killed")  # rows of this batch are already written, uncommitted

    monkeypatch.setattr(store, "save_cursor", crash_on_second_batch)
    with pytest.raises(RuntimeError):
        await Tailer(calls_dir, db, ingestor, batch_lines=3).poll()
    assert await scalar(db, "SELECT count(*) FROM calls") == 3
    assert await scalar(db, "SELECT byte_offset FROM file_offsets") == first_batch_end

    monkeypatch.setattr(store, "save_cursor", real_save)
    seen: list[int] = []
    real_prepare = ingestor.prepare

    def spy(events):  # type: ignore[no-untyped-def]
        seen.extend(e.position for e in events)
        return real_prepare(events)

    monkeypatch.setattr(ingestor, "prepare", spy)
    restarted = Tailer(calls_dir, db, ingestor, batch_lines=3)  # a new process: nothing in memory
    await restarted.poll()
    assert seen == [first_batch_end, first_batch_end + len(lines[3])]  # resumed exactly at the commit
    assert await scalar(db, "SELECT count(*) FROM calls") == 5
    assert await scalar(db, "SELECT count(DISTINCT topic) FROM calls") == 5


async def test_truncated_file_is_read_again_from_the_start(tailer: Tailer, calls_dir: Path, db: Database) -> None:
    path = calls_dir / DAY
    path.write_bytes(b"".join(line(event(i, topic="Rezeptanfrage für die Apotheke")) for i in range(3)))
    await tailer.poll()
    path.write_bytes(line(event(10)))  # truncated and rewritten, shorter than before
    await tailer.poll()
    assert await scalar(db, "SELECT count(*) FROM calls") == 4


async def test_rotated_file_with_the_same_name_is_read_from_zero(tailer: Tailer, calls_dir: Path, db: Database) -> None:
    path = calls_dir / DAY
    path.write_bytes(b"".join(line(event(i)) for i in range(3)))
    await tailer.poll()
    os.rename(path, calls_dir / "archived.jsonl.1")
    path.write_bytes(b"".join(line(event(i, topic="Terminverschiebung gewünscht")) for i in range(20, 24)))
    await tailer.poll()
    assert await scalar(db, "SELECT count(*) FROM calls") == 7


async def test_next_day_file_is_picked_up(tailer: Tailer, calls_dir: Path, db: Database) -> None:
    (calls_dir / "calls-2024-05-02.jsonl").write_bytes(line(event(1)))
    await tailer.poll()
    (calls_dir / "calls-2024-05-03.jsonl").write_bytes(line(event(2)))
    await tailer.poll()
    assert await scalar(db, "SELECT count(*) FROM file_offsets") == 2
    assert await scalar(db, "SELECT count(*) FROM calls") == 2


async def test_replaying_a_file_changes_nothing(tailer: Tailer, calls_dir: Path, db: Database) -> None:
    content = line(event(1)) + line(event(2, event_id=None)) + line(event(3, event_id=None)) + b"kaputt\n"
    (calls_dir / DAY).write_bytes(content)
    await tailer.poll()
    before = await rows(db, "SELECT id, version, updated_at FROM calls ORDER BY id")
    (calls_dir / "calls-2024-05-03.jsonl").write_bytes(content)  # the same events once more
    await tailer.poll()
    assert await rows(db, "SELECT id, version, updated_at FROM calls ORDER BY id") == before
    assert await scalar(db, "SELECT count(*) FROM actions_audit") == 0  # no edits either
    # the broken line is kept once per place it appeared: nothing dropped, nothing doubled
    assert await scalar(db, "SELECT count(*) FROM dead_letters") == 2
    await Tailer(calls_dir, db, tailer.ingestor).poll()  # restart: offsets say everything was read
    assert await scalar(db, "SELECT count(*) FROM dead_letters") == 2


async def test_same_event_id_with_new_content_is_an_audited_edit(tailer: Tailer, calls_dir: Path, db: Database) -> None:
    path = calls_dir / DAY
    path.write_bytes(line(event(1, topic="Rückruf")))
    await tailer.poll()
    with path.open("ab") as f:
        f.write(line(event(1, topic="Rückruf wegen Befund")))
    await tailer.poll()
    assert await rows(db, "SELECT topic, version FROM calls") == [("Rückruf wegen Befund", 2)]
    assert await scalar(db, "SELECT action FROM actions_audit") == "edit"


async def test_invalid_lines_become_encrypted_dead_letters(
    tailer: Tailer, calls_dir: Path, db: Database, keyring: CallKeyring
) -> None:
    bad_number = line(event(1, caller_number="12", caller_name="Erika Mustermann"))
    (calls_dir / DAY).write_bytes(line(event(0)) + b'{"broken": \n' + bad_number + line(event(2, topic="")))
    await tailer.poll()
    assert await scalar(db, "SELECT count(*) FROM calls") == 1
    letters = await rows(db, "SELECT id, reason, origin, position, raw_ct FROM dead_letters ORDER BY position")
    assert [r.reason for r in letters] == ["malformed_json", "invalid_caller_number", "missing_topic"]
    assert all(r.origin == DAY for r in letters)
    assert b"Mustermann" not in letters[1].raw_ct
    async with db.session() as s:
        assert await store.dead_letter_raw(s, keyring, letters[1].id) == bad_number.rstrip(b"\n")


async def test_changes_are_published_after_commit(tailer: Tailer, calls_dir: Path, db: Database, bus: Bus) -> None:
    sub = await bus.nc.subscribe("calls.changed.created")
    (calls_dir / DAY).write_bytes(line(event(1)) + line(event(2)))
    await tailer.poll()
    ids = [r.id for r in await rows(db, "SELECT id FROM calls ORDER BY id")]
    for _ in range(20):  # the shared NATS may carry other processes' changes too
        msg = await sub.next_msg(timeout=5)
        changed = CallsChanged.model_validate(orjson.loads(msg.data)["data"])
        if sorted(changed.call_ids) == ids:
            break
    await sub.unsubscribe()
    assert changed.change == "created" and sorted(changed.call_ids) == ids
    assert b"0151" not in msg.data  # ids only, never content


async def test_personal_fields_are_encrypted_at_rest(tailer: Tailer, calls_dir: Path, db: Database) -> None:
    (calls_dir / DAY).write_bytes(line(event(1, date_of_birth="1984-03-07", secret_extra="Versichertennummer X")))
    await tailer.poll()
    (dob_ct, raw_ct) = (await rows(db, "SELECT dob_ct, raw_ct FROM calls"))[0]
    assert b"1984" not in dob_ct and b"Versichertennummer" not in raw_ct
    await asyncio.sleep(0)
