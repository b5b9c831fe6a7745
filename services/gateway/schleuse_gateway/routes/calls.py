"""`/api/calls`: the calls dashboard (list, open, status, notes, assign, bulk, rights requests, admin, live stream).

Routes check the role as a first gate and translate HTTP to ingest's `calls.api.*` requests with the caller's
signed actor; ingest checks the fine-grained rights again (read, change, PII, admin, rights requests), masks
number and date of birth for roles without the PII right and audits every unmasked view. Bus errors become
problem details in the app-wide handler (404 unknown call, 409 stale version, 422 invalid, 503 ingest down).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, TypeVar

import orjson
import structlog
from fastapi import APIRouter, Depends, Query
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel, Field, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError, Envelope
from schleuse_common.contracts import calls as c
from schleuse_common.service import Runtime
from schleuse_gateway.deps import HTTPProblem, require_roles

log = structlog.get_logger("schleuse.gateway.calls")
R = TypeVar("R", bound=BaseModel)

PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Unauthenticated", **PROBLEM},
    403: {"description": "Forbidden for the caller's roles", **PROBLEM},
    404: {"description": "No such call (or older than the retention period)", **PROBLEM},
    422: {"description": "Invalid request", **PROBLEM},
    503: {"description": "The ingest service does not answer", **PROBLEM},
}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "`version` is stale", **PROBLEM}}

# First gate only: ingest enforces its configurable role sets (dpo reads masked, agent/admin change).
Reader = Annotated[Actor, Depends(require_roles("agent", "admin", "dpo"))]
Changer = Annotated[Actor, Depends(require_roles("agent", "admin"))]
Rights = Annotated[Actor, Depends(require_roles("admin", "dpo"))]
Admin = Annotated[Actor, Depends(require_roles("admin"))]
Many = Annotated[list[str] | None, Query(description="repeat the parameter or separate values by commas")]
Masked = Annotated[bool, Query(description="the masked view even when allowed to see number and date of birth")]

LIVE_QUEUE = 1000  # changes buffered per stream client; a slower client misses some and resyncs
LIVE_CHUNK = 200  # ids fetched per list request when a change names many calls
PING_S = 15


class StatusBody(BaseModel):
    """`version` is the call's version as last seen; a stale one answers 409."""

    status: c.CallStatus
    version: int


class NoteBody(BaseModel):
    body: str = Field(min_length=1, max_length=10_000)


class AssignBody(BaseModel):
    """`assignee` is a user id (null unassigns); with `version` the assignment is conditional (409 when stale)."""

    assignee: str | None
    version: int | None = None


def build_router(rt: Runtime) -> APIRouter:
    """The calls routes, bound to the runtime's bus."""
    bus = rt.bus
    router = APIRouter(prefix="/api/calls", tags=["calls"], responses=ERRORS)

    async def ask(subject: str, data: BaseModel, reply: type[R], actor: Actor, timeout: float = 10.0) -> R:
        return await bus.request(subject, data, reply, actor=actor, timeout=timeout)

    # -- reads ----------------------------------------------------------------------------

    @router.get("", summary="Calls, filtered and searched, with cursor pages and a total count")
    async def list_calls(
        actor: Reader,
        q: Annotated[str | None, Query(max_length=200, description="number prefix, or words of name/topic")] = None,
        status: Many = None,
        from_: Annotated[datetime | None, Query(alias="from")] = None,
        to: datetime | None = None,
        assignee: str | None = None,
        priority: Many = None,
        quick: Annotated[list[str] | None, Query(description="today, last_hour, open, mine")] = None,
        sort: Annotated[c.SortOrder, Query()] = "newest",
        cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        masked: Masked = False,
    ) -> c.CallPage:
        req = _validated(
            c.ListCallsRequest,
            {
                "q": q,
                "status": _split(status),
                "from": from_,
                "to": to,
                "assignee": assignee,
                "priority": _split(priority),
                "quick": _split(quick),
                "sort": sort,
                "cursor": cursor,
                "limit": limit,
                "masked": masked,
            },
        )
        return await ask(c.CALLS_API_LIST, req, c.CallPage, actor)

    @router.get(
        "/stream",
        summary="Server-sent events: `call` for every new or changed call, `deleted` with ids",
        response_class=EventSourceResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def stream_calls(actor: Reader, masked: Masked = False) -> EventSourceResponse:
        live = await LiveCalls.open(bus, actor, masked)
        try:  # subscribed first, so nothing falls between this check and the stream
            probe = c.ListCallsRequest(limit=1, masked=True, with_total=False)
            await ask(c.CALLS_API_LIST, probe, c.CallPage, actor)  # rights and reachability: a problem, not a stream
        except BaseException:
            await live.close()
            raise
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return EventSourceResponse(live.events(), ping=PING_S, headers=headers, background=BackgroundTask(live.close))

    @router.get("/{call_id}", summary="One call with status history, notes and audit")
    async def get_call(call_id: int, actor: Reader, masked: Masked = False) -> c.CallDetail:
        return await ask(c.CALLS_API_GET, c.GetCallRequest(id=call_id, masked=masked), c.CallDetail, actor)

    # -- changes --------------------------------------------------------------------------

    @router.patch(
        "/{call_id}/status", summary="Set the status (409 when stale; DONE is idempotent)", responses=CONFLICT
    )
    async def change_status(call_id: int, body: StatusBody, actor: Changer) -> c.CallChanged:
        req = c.ChangeStatusRequest(id=call_id, status=body.status, version=body.version)
        return await ask(c.CALLS_API_STATUS, req, c.CallChanged, actor)

    @router.post("/{call_id}/notes", status_code=201, summary="Add a note (encrypted at rest)")
    async def add_note(call_id: int, body: NoteBody, actor: Changer) -> c.CallChanged:
        return await ask(c.CALLS_API_NOTE, c.AddNoteRequest(id=call_id, body=body.body), c.CallChanged, actor)

    @router.post("/{call_id}/assign", summary="Assign to a user id or unassign", responses=CONFLICT)
    async def assign(call_id: int, body: AssignBody, actor: Changer) -> c.CallChanged:
        req = c.AssignRequest(id=call_id, assignee=body.assignee, version=body.version)
        return await ask(c.CALLS_API_ASSIGN, req, c.CallChanged, actor)

    @router.post("/bulk", summary="Bulk status and/or assignment; outcome per call (changed, conflict, ...)")
    async def bulk(body: c.BulkRequest, actor: Changer) -> c.BulkResult:
        return await ask(c.CALLS_API_BULK, body, c.BulkResult, actor, timeout=30.0)

    # -- rights requests ------------------------------------------------------------------

    @router.post("/export", summary="Everything about one call or one caller number (Art. 15; audited)")
    async def export(body: c.SubjectRequest, actor: Rights) -> c.ExportResult:
        return await ask(c.CALLS_API_EXPORT, body, c.ExportResult, actor, timeout=30.0)

    @router.post("/delete", summary="Erase one call or every call of a caller number (Art. 17; audited)")
    async def delete(body: c.SubjectRequest, actor: Rights) -> c.DeleteResult:
        return await ask(c.CALLS_API_DELETE, body, c.DeleteResult, actor, timeout=30.0)

    # -- administration -------------------------------------------------------------------

    @router.get("/admin/stats", summary="Calls per day, top topics, open calls, dead letters (admin)")
    async def stats(actor: Admin, days: Annotated[int, Query(ge=1, le=3650)] = 30) -> c.StatsResult:
        return await ask(c.CALLS_API_STATS, c.StatsRequest(days=days), c.StatsResult, actor)

    @router.get("/admin/config", summary="The retention period and the ingest directory (admin)")
    async def read_config(actor: Admin) -> c.ConfigResult:
        return await ask(c.CALLS_API_CONFIG, c.ConfigRequest(), c.ConfigResult, actor)

    @router.put("/admin/config", summary="Change the retention period (admin; audited)")
    async def write_config(body: c.ConfigRequest, actor: Admin) -> c.ConfigResult:
        return await ask(c.CALLS_API_CONFIG, body, c.ConfigResult, actor)

    @router.post("/admin/purge", summary="Run the retention purge now (admin)")
    async def purge(actor: Admin) -> c.PurgeResult:
        return await ask(c.CALLS_API_PURGE, c.PurgeRequest(), c.PurgeResult, actor, timeout=120.0)

    @router.get("/admin/dead-letters", summary="Rejected call events with their reasons (admin)")
    async def dead_letters(actor: Admin, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> c.DeadLettersResult:
        return await ask(c.CALLS_API_DEAD_LETTERS, c.DeadLettersRequest(limit=limit), c.DeadLettersResult, actor)

    return router


class LiveCalls:
    """One stream client: a core subscription on `calls.changed.>` turned into SSE events for its actor.

    JetStream keeps the facts; this is only the live view, so a client that reconnects reloads its page.
    """

    def __init__(self, bus: Bus, actor: Actor, masked: bool) -> None:
        self.bus = bus
        self.actor = actor
        self.masked = masked
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=LIVE_QUEUE)
        self.sub: Subscription | None = None

    @classmethod
    async def open(cls, bus: Bus, actor: Actor, masked: bool) -> LiveCalls:
        """Subscribe; changes queue up until `events()` is iterated."""
        live = cls(bus, actor, masked)
        live.sub = await bus.nc.subscribe(c.CALLS_CHANGED, cb=live._on_change)
        return live

    async def _on_change(self, msg: Msg) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a slow client never holds up the connection
            self.queue.put_nowait(msg.data)

    async def close(self) -> None:
        """Unsubscribe (idempotent: the generator's end and the response's background both call it)."""
        sub, self.sub = self.sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        """`ready` once, then `call` (a CallSummary, masked per role) or `deleted` (`{"ids": [...]}`)."""
        try:
            yield ServerSentEvent(event="ready", data="{}")
            while True:
                change = _change_of(await self.queue.get())
                if change is None:
                    continue
                if change.change == "deleted":
                    yield ServerSentEvent(event="deleted", data=orjson.dumps({"ids": change.call_ids}).decode())
                    continue
                for item in await self._summaries(change.call_ids):
                    yield ServerSentEvent(event="call", id=f"{item.id}:{item.version}", data=item.model_dump_json())
        finally:
            await self.close()

    async def _summaries(self, ids: list[int]) -> list[c.CallSummary]:
        """The calls as this actor may see them (ingest masks, applies retention and audits unmasked views)."""
        out: list[c.CallSummary] = []
        for i in range(0, len(ids), LIVE_CHUNK):
            req = c.ListCallsRequest(
                ids=ids[i : i + LIVE_CHUNK], limit=LIVE_CHUNK, masked=self.masked, with_total=False
            )
            try:
                page = await self.bus.request(c.CALLS_API_LIST, req, c.CallPage, actor=self.actor, timeout=10.0)
            except BusError as e:  # the client resyncs on reconnect; the stream goes on
                log.warning("calls.stream_fetch_failed", code=e.code)
                continue
            out.extend(page.items)
        return out


def _change_of(raw: bytes) -> c.CallsChanged | None:
    try:
        return Envelope[c.CallsChanged].model_validate_json(raw).data
    except ValidationError:
        log.warning("calls.stream_bad_change")
        return None


def _validated(model: type[R], values: dict[str, Any]) -> R:
    """Build a request model from query values; a bad value is a 422 naming the field, never echoing input."""
    try:
        return model.model_validate(values)
    except ValidationError as e:
        detail = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:3])
        raise HTTPProblem(422, "Invalid request", detail, code="invalid_request") from e


def _split(values: list[str] | None) -> list[str]:
    """Accept both `?status=NEW&status=DONE` and `?status=NEW,DONE`."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
