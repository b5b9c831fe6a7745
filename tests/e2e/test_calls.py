"""The calls dashboard end to end: every service as a real process, calls fed the two ways a site feeds them.

A line appended to today's `calls-YYYY-MM-DD.jsonl` shows up in `GET /api/calls` and live on the SSE stream;
invalid lines land in the dead letters next to the valid ones; integrators' events on `calls.events.<source>`
(bare JSON and envelope) appear once, however often they are replayed; a stale version is a 409; roles without
the PII right see number and date of birth masked, and every unmasked view is audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import nats
import orjson
import pytest
from faker import Faker

from schleuse_common.devrun import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

BERLIN = ZoneInfo("Europe/Berlin")
WAIT_S = 30.0  # a guard against hanging, not a performance bound (bench/ingest.py measures latency)
fake = Faker("de_DE")
T = TypeVar("T")


# -- helpers ----------------------------------------------------------------------------------


def _e164(national: str) -> str:
    """`0151 12345678` -> `+4915112345678`, as ingest stores it."""
    return "+49" + national.replace(" ", "")[1:]


def _event(**overrides: Any) -> dict[str, Any]:
    """A valid call event with a fresh caller number (so a search by number finds exactly this call)."""
    national = f"0151 {secrets.randbelow(10**8):08d}"
    base: dict[str, Any] = {
        "event_id": f"e2e-{uuid.uuid4().hex[:12]}",
        "received_at": datetime.now(BERLIN).replace(microsecond=0).isoformat(),
        "caller_number": national,
        "caller_name": fake.name(),
        "date_of_birth": "07.03.1984",
        "topic": "Rezept abholen",
        "priority": "hoch",
        "source": "pbx-e2e",
    }
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


def _append(path: Path, *lines: bytes) -> None:
    """What the telephone system does: whole lines appended to the day's file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        f.write(b"".join(lines))


def _line(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event) + b"\n"


def _day_file(platform: Platform, day: date) -> Path:
    return Path(platform.env["SCHLEUSE_INGEST_DIR"]) / f"calls-{day.isoformat()}.jsonl"


async def _eventually(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Poll `probe` until it returns something (ingest is asynchronous: tailer, consumer)."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        value = await probe()
        if value is not None:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not seen within {WAIT_S:g}s: {what}")
        await asyncio.sleep(0.1)


def _client(platform: Platform, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=platform.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


async def _calls_of(api: httpx.AsyncClient, e164: str) -> list[dict[str, Any]]:
    r = await api.get("/api/calls", params={"q": e164})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def _one_call(api: httpx.AsyncClient, e164: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        items = await _calls_of(api, e164)
        return items[0] if items else None

    return await _eventually(probe, f"a call from {e164[:6]}...")


@pytest.fixture(scope="module")
def users(platform: Platform, admin_key: str) -> dict[str, dict[str, str]]:
    """An agent, a dpo and a plain user, each made through the admin API with an API key."""
    out: dict[str, dict[str, str]] = {}
    with httpx.Client(base_url=platform.url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30) as admin:
        for role in ("agent", "dpo", "user"):
            r = admin.post(
                "/api/admin/users", json={"login_name": f"e2e-{role}-{secrets.token_hex(4)}", "roles": [role]}
            )
            assert r.status_code == 201, r.text
            user_id = r.json()["user"]["id"]
            r = admin.post("/api/admin/keys", json={"user_id": user_id, "name": "e2e-calls", "scopes": ["calls"]})
            assert r.status_code == 201, r.text
            out[role] = {"id": user_id, "key": r.json()["key"]}
    return out


class EventStream:
    """A reader of `GET /api/calls/stream`: server-sent events parsed into (event, data) as they arrive."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def read(self) -> None:
        event, data = "message", ""
        async for line in self.response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and data:
                await self.events.put((event, orjson.loads(data)))
                event, data = "message", ""

    async def next(self, wanted: Callable[[str, Any], bool]) -> tuple[str, Any]:
        """The next event `wanted` accepts (others are skipped: other tests' calls flow by too)."""
        async with asyncio.timeout(WAIT_S):
            while True:
                event, data = await self.events.get()
                if wanted(event, data):
                    return event, data


@asynccontextmanager
async def _stream(platform: Platform, key: str, **params: str) -> AsyncIterator[EventStream]:
    async with (
        _client(platform, key) as api,
        api.stream("GET", "/api/calls/stream", params=params, timeout=httpx.Timeout(30, read=None)) as r,
    ):
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        stream = EventStream(r)
        reader = asyncio.create_task(stream.read())
        try:
            await stream.next(lambda event, _: event == "ready")
            yield stream
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await reader


# -- tests ------------------------------------------------------------------------------------


async def test_a_line_in_todays_file_is_listed_and_pushed_live(
    platform: Platform, users: dict[str, dict[str, str]]
) -> None:
    agent = users["agent"]["key"]
    event = _event()
    e164 = _e164(event["caller_number"])
    async with _stream(platform, agent) as live, _client(platform, agent) as api:
        _append(_day_file(platform, datetime.now(BERLIN).date()), _line(event))
        kind, pushed = await live.next(lambda ev, d: ev == "call" and d.get("caller_number") == e164)
        assert kind == "call" and pushed["topic"] == "Rezept abholen" and pushed["status"] == "NEW"
        assert pushed["priority"] == "high" and pushed["source"] == "pbx-e2e" and pushed["pii_masked"] is False

        r = await api.get("/api/calls", params={"q": event["caller_number"], "quick": "today,open", "sort": "newest"})
        assert r.status_code == 200, r.text
        page = r.json()
        assert [c["id"] for c in page["items"]] == [pushed["id"]] and page["total"] == 1
        detail = (await api.get(f"/api/calls/{pushed['id']}")).json()
        assert detail["caller_name"] == event["caller_name"] and detail["date_of_birth"] == "1984-03-07"

        # a change made through the API is pushed too, with the new version
        r = await api.patch(
            f"/api/calls/{pushed['id']}/status", json={"status": "IN_PROGRESS", "version": pushed["version"]}
        )
        assert r.status_code == 200, r.text
        version = pushed["version"] + 1
        _, changed = await live.next(
            lambda ev, d: ev == "call" and d.get("id") == pushed["id"] and d["version"] == version
        )
        assert changed["status"] == "IN_PROGRESS"


async def test_invalid_lines_land_in_dead_letters_and_nothing_is_dropped(
    platform: Platform, admin_key: str, users: dict[str, dict[str, str]]
) -> None:
    path = _day_file(platform, datetime.now(BERLIN).date() - timedelta(days=1))  # a file of its own
    first, second = _event(), _event(event_id=None)
    offset = path.stat().st_size if path.exists() else 0
    bad_number = _line(_event(caller_number="12"))
    lines = [_line(first), bad_number, b'{"topic": "kaputt", \n', _line(_event(topic=None)), _line(second)]
    _append(path, *lines)
    async with _client(platform, users["agent"]["key"]) as api:
        for ev in (first, second):
            await _one_call(api, _e164(ev["caller_number"]))
    async with _client(platform, admin_key) as admin:

        async def letters() -> list[dict[str, Any]] | None:
            r = await admin.get("/api/calls/admin/dead-letters", params={"limit": 500})
            assert r.status_code == 200, r.text
            mine = [d for d in r.json()["items"] if d["origin"] == path.name and d["position"] >= offset]
            return mine if len(mine) >= 3 else None

        dead = sorted(await _eventually(letters, "three dead letters"), key=lambda d: d["position"])
        assert [d["reason"] for d in dead] == ["invalid_caller_number", "malformed_json", "missing_topic"]
        assert dead[0]["position"] == offset + len(lines[0])  # where in the file, for repair
        assert all("raw" not in d for d in dead)  # the line itself stays encrypted
        stats = (await admin.get("/api/calls/admin/stats", params={"days": 2})).json()
        assert stats["dead_letters"] >= 3 and stats["open_calls"] >= 2 and stats["retention_days"] == 30


async def test_integrator_events_on_nats_appear_once(platform: Platform, users: dict[str, dict[str, str]]) -> None:
    source = f"e2e{secrets.token_hex(3)}"
    bare, wrapped, marker = _event(source=None), _event(source=None), _event(source=None)
    nc = await nats.connect(platform.env["SCHLEUSE_NATS_URL"])
    try:
        js = nc.jetstream()
        await js.publish(f"calls.events.{source}", orjson.dumps(bare))
        for _ in range(2):  # a replay with a new message id: ingest dedupes on event_id
            envelope_id = str(uuid.uuid4())
            envelope = {
                "id": envelope_id,
                "type": "calls.event",
                "version": 1,
                "occurred_at": datetime.now(UTC).isoformat(),
                "trace_id": None,
                "actor": None,
                "data": wrapped,
            }
            await js.publish(f"calls.events.{source}", orjson.dumps(envelope), headers={"Nats-Msg-Id": envelope_id})
        await js.publish(f"calls.events.{source}", orjson.dumps(marker))
    finally:
        await nc.close()
    async with _client(platform, users["agent"]["key"]) as api:
        await _one_call(api, _e164(marker["caller_number"]))  # in order: the rest is done
        for ev in (bare, wrapped):
            items = await _calls_of(api, _e164(ev["caller_number"]))
            assert len(items) == 1, "an integrator's event appears exactly once"
            assert items[0]["caller_name"] == ev["caller_name"] and items[0]["topic"] == "Rezept abholen"


async def test_changes_need_the_current_version_and_done_is_idempotent(
    platform: Platform, users: dict[str, dict[str, str]]
) -> None:
    event = _event()
    _append(_day_file(platform, datetime.now(BERLIN).date()), _line(event))
    agent = users["agent"]
    async with _client(platform, agent["key"]) as api:
        call = await _one_call(api, _e164(event["caller_number"]))
        path = f"/api/calls/{call['id']}"
        r = await api.patch(f"{path}/status", json={"status": "IN_PROGRESS", "version": call["version"]})
        assert r.status_code == 200 and r.json()["changed"] is True
        version = r.json()["call"]["version"]
        assert version == call["version"] + 1

        stale = await api.patch(f"{path}/status", json={"status": "NEW", "version": call["version"]})
        assert stale.status_code == 409
        assert stale.headers["content-type"] == "application/problem+json" and stale.json()["status"] == 409

        done = await api.patch(f"{path}/status", json={"status": "DONE", "version": version})
        assert done.status_code == 200 and done.json()["changed"] is True
        again = await api.patch(f"{path}/status", json={"status": "DONE", "version": call["version"]})
        assert again.status_code == 200 and again.json()["changed"] is False  # idempotent, even when stale

        assert (await api.post(f"{path}/notes", json={"body": "Rückruf vereinbart"})).status_code == 201
        r = await api.post(f"{path}/assign", json={"assignee": agent["id"]})
        assert r.status_code == 200 and r.json()["call"]["assignee"] == agent["id"]
        mine = await api.get("/api/calls", params={"quick": "mine", "status": "DONE", "limit": 200})
        assert call["id"] in [c["id"] for c in mine.json()["items"]]
        bulk = await api.post("/api/calls/bulk", json={"ids": [call["id"], 2**31 - 1], "status": "DONE"})
        assert [i["outcome"] for i in bulk.json()["items"]] == ["unchanged", "not_found"]

        detail = (await api.get(path)).json()
        assert [h["to_status"] for h in detail["history"]][-2:] == ["IN_PROGRESS", "DONE"]
        assert [n["body"] for n in detail["notes"]] == ["Rückruf vereinbart"]
        assert (await api.get("/api/calls/999999999")).status_code == 404
        bad = await api.get("/api/calls", params={"status": "ERLEDIGT"})
        assert bad.status_code == 422 and "ERLEDIGT" not in bad.text


async def test_roles_without_the_pii_right_see_masked_data_and_unmasked_views_are_audited(
    platform: Platform, admin_key: str, users: dict[str, dict[str, str]]
) -> None:
    event = _event()
    e164 = _e164(event["caller_number"])
    _append(_day_file(platform, datetime.now(BERLIN).date()), _line(event))
    async with _client(platform, users["agent"]["key"]) as agent, _client(platform, users["dpo"]["key"]) as dpo:
        seen = await _one_call(agent, e164)
        assert seen["caller_number"] == e164 and seen["date_of_birth"] == "1984-03-07" and not seen["pii_masked"]

        masked = (await dpo.get(f"/api/calls/{seen['id']}")).json()
        assert masked["pii_masked"] is True and masked["date_of_birth"] == "****-**-**"
        assert (
            masked["caller_number"] != e164
            and masked["caller_number"][-2:] == e164[-2:]
            and "*" in masked["caller_number"]
        )
        assert masked["caller_name"] == event["caller_name"] and masked["topic"] == event["topic"]
        asked = (await agent.get(f"/api/calls/{seen['id']}", params={"masked": "true"})).json()
        assert asked["pii_masked"] is True

        def pii_views(detail: dict[str, Any]) -> int:
            return sum(1 for a in detail["audit"] if a["action"] == "view_pii")

        before = pii_views((await agent.get(f"/api/calls/{seen['id']}")).json())  # includes this very view
        assert before >= 2  # the listing above and this detail, both unmasked
        assert (await dpo.get("/api/calls", params={"q": e164})).json()["items"][0]["pii_masked"] is True
        after = pii_views((await agent.get(f"/api/calls/{seen['id']}")).json())
        assert after == before + 1  # only the agent's view counts; masked views are not PII views

        # the dpo can answer a data-subject request; a plain user cannot even read
        exported = await dpo.post("/api/calls/export", json={"caller_number": event["caller_number"]})
        assert exported.status_code == 200 and [c["call"]["id"] for c in exported.json()["calls"]] == [seen["id"]]
        assert exported.json()["calls"][0]["call"]["caller_number"] == e164
        async with _stream(platform, users["dpo"]["key"]) as live:
            r = await dpo.post("/api/calls/delete", json={"call_id": seen["id"]})
            assert r.status_code == 200 and r.json()["calls_deleted"] == 1
            await live.next(lambda ev, d: ev == "deleted" and seen["id"] in d["ids"])
        assert (await agent.get(f"/api/calls/{seen['id']}")).status_code == 404
    async with _client(platform, users["user"]["key"]) as user:
        r = await user.get("/api/calls")
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
        assert (await user.get("/api/calls/stream")).status_code == 403
    async with _client(platform, admin_key) as admin:
        assert (await admin.get("/api/calls/admin/config")).json()["retention_days"] == 30
