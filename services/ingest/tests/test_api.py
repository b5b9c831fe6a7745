"""The calls API over the real bus: filters, masking, audit, versions, notes, bulk, retention, rights."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError
from schleuse_common.contracts import calls as c
from schleuse_common.db import Database
from schleuse_ingest.handlers import CallsApi
from schleuse_ingest.ingestor import Ingestor, RawEvent

from .conftest import API_PREFIX
from .helpers import NOW, event, line, rows, scalar


async def seed(ingestor: Ingestor, *events: dict[str, Any]) -> None:
    await ingestor.ingest([RawEvent(line(e), "test", i, "test", e) for i, e in enumerate(events)], kind="test")


async def ask(bus: Bus, subject: str, data: Any, reply: type[Any], actor: Actor) -> Any:
    return await bus.request(API_PREFIX + subject, data, reply, actor=actor)


async def ids_of(bus: Bus, actor: Actor, **filters: Any) -> list[int]:
    page = await ask(bus, c.CALLS_API_LIST, c.ListCallsRequest(**filters), c.CallPage, actor)
    return [item.id for item in page.items]


@pytest.fixture
async def calls(api: CallsApi, ingestor: Ingestor) -> None:
    ago = lambda **kw: (NOW - timedelta(**kw)).isoformat()  # noqa: E731
    await seed(
        ingestor,
        event(
            1,
            received_at=ago(minutes=10),
            topic="Rezept für Blutdrucktabletten",
            priority="hoch",
            caller_name="Jürgen Weiß",
            caller_number="0151 23456789",
        ),
        event(
            2,
            received_at=ago(hours=3),
            topic="Terminverschiebung beim Hausarzt",
            caller_name="Erika Müller",
            caller_number="030 1234567",
        ),
        event(
            3,
            received_at=ago(days=2),
            topic="Frage zur Rechnung",
            caller_name="Hans Schmidt",
            caller_number="089 7654321",
            priority="dringend",
        ),
        event(4, received_at=ago(days=40), topic="Rezept alt", caller_name="Alt Alter", caller_number="040 1111111"),
    )


async def test_list_filters_search_and_retention(bus: Bus, calls: None, actors: dict[str, Actor]) -> None:
    agent = actors["agent"]
    assert await ids_of(bus, agent) == [1, 2, 3]  # the 40-day-old call is never returned
    assert await ids_of(bus, agent, sort="oldest") == [3, 2, 1]
    assert await ids_of(bus, agent, sort="priority") == [3, 1, 2]
    assert await ids_of(bus, agent, q="0151 234") == [1]
    assert await ids_of(bus, agent, q="+4930") == [2]
    assert await ids_of(bus, agent, q="müller") == [2]
    assert await ids_of(bus, agent, q="Rezept") == [1]  # German stemming on the topic, old call excluded
    assert await ids_of(bus, agent, q="Termin Hausarzt") == [2]
    assert await ids_of(bus, agent, q="weiss") == [1]  # name words, umlauts folded
    assert await ids_of(bus, agent, q="Jürg") == [1]  # prefix of a name word
    assert await ids_of(bus, agent, q="Müller Hausarzt") == [2]  # name and topic words combine
    assert await ids_of(bus, agent, q="ller") == []  # words match from their start
    assert await ids_of(bus, agent, q="!?") == []  # no word at all matches nothing
    assert await ids_of(bus, agent, priority=["urgent", "high"]) == [1, 3]
    assert await ids_of(bus, agent, quick=["last_hour"]) == [1]
    assert await ids_of(bus, agent, **{"from": NOW - timedelta(days=100)}) == [1, 2, 3]


async def test_cursor_pagination_with_total(bus: Bus, calls: None, actors: dict[str, Actor]) -> None:
    first = await ask(bus, c.CALLS_API_LIST, c.ListCallsRequest(limit=2), c.CallPage, actors["agent"])
    assert [i.id for i in first.items] == [1, 2] and first.total == 3 and first.total_exact
    second = await ask(
        bus, c.CALLS_API_LIST, c.ListCallsRequest(limit=2, cursor=first.next_cursor), c.CallPage, actors["agent"]
    )
    assert [i.id for i in second.items] == [3] and second.next_cursor is None


async def test_masking_per_role_and_audit_of_unmasked_views(
    bus: Bus, calls: None, db: Database, actors: dict[str, Actor]
) -> None:
    dpo_page = await ask(bus, c.CALLS_API_LIST, c.ListCallsRequest(q="0151"), c.CallPage, actors["dpo"])
    masked = dpo_page.items[0]
    assert masked.pii_masked and masked.caller_number == "+49151******89" and masked.date_of_birth == "****-**-**"
    assert await scalar(db, "SELECT count(*) FROM actions_audit WHERE action = 'view_pii'") == 0

    agent_page = await ask(bus, c.CALLS_API_LIST, c.ListCallsRequest(q="0151"), c.CallPage, actors["agent"])
    assert agent_page.items[0].caller_number == "+4915123456789"
    assert agent_page.items[0].date_of_birth == "1984-03-07"
    views = await rows(db, "SELECT call_id, actor_id FROM actions_audit WHERE action = 'view_pii'")
    assert [(v.call_id, v.actor_id) for v in views] == [(1, "agent-1")]

    asked_masked = await ask(
        bus, c.CALLS_API_LIST, c.ListCallsRequest(q="0151", masked=True), c.CallPage, actors["agent"]
    )
    assert asked_masked.items[0].pii_masked
    assert await scalar(db, "SELECT count(*) FROM actions_audit WHERE action = 'view_pii'") == 1

    with pytest.raises(BusError) as err:
        await ask(bus, c.CALLS_API_LIST, c.ListCallsRequest(), c.CallPage, actors["user"])
    assert err.value.status == 403


async def test_status_versions_done_idempotent_and_history(bus: Bus, calls: None, actors: dict[str, Actor]) -> None:
    agent = actors["agent"]
    done = await ask(
        bus, c.CALLS_API_STATUS, c.ChangeStatusRequest(id=1, status="DONE", version=1), c.CallChanged, agent
    )
    assert done.changed and done.call.status == "DONE" and done.call.version == 2
    again = await ask(
        bus, c.CALLS_API_STATUS, c.ChangeStatusRequest(id=1, status="DONE", version=1), c.CallChanged, agent
    )
    assert not again.changed and again.call.version == 2
    with pytest.raises(BusError) as err:
        await ask(bus, c.CALLS_API_STATUS, c.ChangeStatusRequest(id=1, status="NEW", version=1), c.CallChanged, agent)
    assert err.value.status == 409
    with pytest.raises(BusError) as err:
        await ask(bus, c.CALLS_API_STATUS, c.ChangeStatusRequest(id=4, status="DONE", version=1), c.CallChanged, agent)
    assert err.value.status == 404  # older than the policy: as if it did not exist
    with pytest.raises(BusError) as err:
        await ask(
            bus, c.CALLS_API_STATUS, c.ChangeStatusRequest(id=2, status="DONE", version=1), c.CallChanged, actors["dpo"]
        )
    assert err.value.status == 403
    detail = await ask(bus, c.CALLS_API_GET, c.GetCallRequest(id=1), c.CallDetail, agent)
    assert [(h.from_status, h.to_status) for h in detail.history] == [(None, "NEW"), ("NEW", "DONE")]
    assert [a.action for a in detail.audit if a.action != "view_pii"] == ["status_change"]


async def test_notes_are_encrypted_and_assign(bus: Bus, calls: None, db: Database, actors: dict[str, Actor]) -> None:
    agent = actors["agent"]
    noted = await ask(
        bus, c.CALLS_API_NOTE, c.AddNoteRequest(id=2, body="Rückruf nach 14 Uhr, Tochter anrufen"), c.CallChanged, agent
    )
    assert noted.call.version == 2
    assert b"Tochter" not in (await scalar(db, "SELECT body_ct FROM call_notes"))
    assigned = await ask(
        bus, c.CALLS_API_ASSIGN, c.AssignRequest(id=2, assignee="agent-1", version=2), c.CallChanged, agent
    )
    assert assigned.call.assignee == "agent-1" and assigned.call.status == "IN_PROGRESS"
    assert await ids_of(bus, agent, quick=["mine"]) == [2]
    detail = await ask(bus, c.CALLS_API_GET, c.GetCallRequest(id=2), c.CallDetail, agent)
    assert detail.notes[0].body == "Rückruf nach 14 Uhr, Tochter anrufen"
    audit = [a for a in detail.audit if a.action != "view_pii"]
    assert [a.action for a in audit] == ["note", "assign"]
    assert "Tochter" not in str(audit[0].diff)


async def test_bulk_status_and_assign(bus: Bus, calls: None, actors: dict[str, Actor]) -> None:
    result = await ask(
        bus,
        c.CALLS_API_BULK,
        c.BulkRequest(ids=[1, 2, 3, 99], status="DONE", assign=True, assignee="agent-7", versions={3: 5}),
        c.BulkResult,
        actors["agent"],
    )
    assert [(i.id, i.outcome) for i in result.items] == [
        (1, "changed"),
        (2, "changed"),
        (3, "conflict"),
        (99, "not_found"),
    ]
    assert await ids_of(bus, actors["agent"], status=["DONE"]) == [1, 2]


async def test_export_and_delete_per_caller_with_receipts(
    bus: Bus, calls: None, db: Database, actors: dict[str, Actor]
) -> None:
    dpo = actors["dpo"]
    with pytest.raises(BusError) as err:
        await ask(
            bus, c.CALLS_API_EXPORT, c.SubjectRequest(caller_number="0151 23456789"), c.ExportResult, actors["agent"]
        )
    assert err.value.status == 403
    exported = await ask(bus, c.CALLS_API_EXPORT, c.SubjectRequest(caller_number="0151 23456789"), c.ExportResult, dpo)
    assert len(exported.calls) == 1
    assert exported.calls[0].call.caller_number == "+4915123456789"
    assert exported.calls[0].raw_payload is not None and exported.calls[0].raw_payload["event_id"] == "evt-1"
    deleted = await ask(bus, c.CALLS_API_DELETE, c.SubjectRequest(caller_number="+4915123456789"), c.DeleteResult, dpo)
    assert deleted.calls_deleted == 1 and deleted.keys_shredded == 1
    assert await ids_of(bus, actors["agent"]) == [2, 3]
    receipts = await rows(
        db, "SELECT call_id, action FROM actions_audit WHERE action IN ('export', 'delete') ORDER BY id"
    )
    assert [(r.call_id, r.action) for r in receipts] == [
        (1, "export"),
        (None, "export"),
        (1, "delete"),
        (None, "delete"),
    ]
    assert await scalar(db, "SELECT count(*) FROM actions_audit WHERE call_id = 1 AND action = 'view_pii'") == 0
    by_call = await ask(bus, c.CALLS_API_DELETE, c.SubjectRequest(call_id=3), c.DeleteResult, dpo)
    assert by_call.calls_deleted == 1
    assert await ids_of(bus, actors["agent"]) == [2]


async def test_purge_keeps_aggregates_and_records_the_run(
    bus: Bus, calls: None, db: Database, calls_dir: Path, actors: dict[str, Actor]
) -> None:
    old_file = calls_dir / "calls-2020-01-01.jsonl"
    old_file.write_bytes(line(event(9)))
    fresh_file = calls_dir / f"calls-{NOW.date().isoformat()}.jsonl"
    fresh_file.write_bytes(line(event(9)))
    await scalar(
        db,
        "INSERT INTO dead_letters (created_at, source, origin, reason, key_id, raw_ct, line_hash) "
        "VALUES (now() - interval '45 days', 'file', 'x', 'malformed_json', 'k', '\\x00', 'h') RETURNING id",
    )
    admin = actors["admin"]
    result = await ask(bus, c.CALLS_API_PURGE, c.PurgeRequest(), c.PurgeResult, admin)
    assert (result.calls_deleted, result.dead_letters_deleted, result.files_deleted) == (1, 1, 1)
    assert not old_file.exists() and fresh_file.exists()
    assert await scalar(db, "SELECT count(*) FROM calls") == 3
    assert await scalar(db, "SELECT sum(calls) FROM call_stats_daily") == 1
    assert await scalar(db, "SELECT topic FROM call_stats_topic") == "(andere)"  # one call: too rare to keep
    run = (await rows(db, "SELECT finished_at, calls_deleted, errors FROM retention_runs"))[0]
    assert run.finished_at is not None and run.calls_deleted == 1 and run.errors == []
    stats = await ask(bus, c.CALLS_API_STATS, c.StatsRequest(days=60), c.StatsResult, admin)
    assert sum(d.calls for d in stats.by_day) == 4 and stats.open_calls == 3
    with pytest.raises(BusError):
        await ask(bus, c.CALLS_API_STATS, c.StatsRequest(), c.StatsResult, actors["agent"])


async def test_shorter_retention_hides_calls_before_any_purge(bus: Bus, calls: None, actors: dict[str, Actor]) -> None:
    config = await ask(bus, c.CALLS_API_CONFIG, c.ConfigRequest(retention_days=1), c.ConfigResult, actors["admin"])
    assert config.retention_days == 1
    assert await ids_of(bus, actors["agent"]) == [1, 2]
    with pytest.raises(BusError) as err:
        await ask(bus, c.CALLS_API_GET, c.GetCallRequest(id=3), c.CallDetail, actors["agent"])
    assert err.value.status == 404
