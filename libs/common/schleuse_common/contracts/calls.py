"""`calls.*` bus contract: integrator events, the calls API (request/reply) and live change facts.

Ingest answers `calls.api.*` and publishes `calls.changed.*`; the gateway maps `/api/calls...` to the
`calls.api.*` subjects with the caller's signed Actor and turns `calls.changed.*` into an SSE stream.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# JetStream (stream CALLS)
CALLS_EVENTS = "calls.events.>"  # integrators publish here, e.g. calls.events.pbx1
CALLS_CHANGED = "calls.changed.>"
CALLS_CHANGED_CREATED = "calls.changed.created"
CALLS_CHANGED_UPDATED = "calls.changed.updated"
CALLS_CHANGED_DELETED = "calls.changed.deleted"

# request/reply, answered by ingest
CALLS_API_LIST = "calls.api.list"
CALLS_API_GET = "calls.api.get"
CALLS_API_STATUS = "calls.api.status"
CALLS_API_NOTE = "calls.api.note"
CALLS_API_ASSIGN = "calls.api.assign"
CALLS_API_BULK = "calls.api.bulk"
CALLS_API_EXPORT = "calls.api.export"
CALLS_API_DELETE = "calls.api.delete"
CALLS_API_STATS = "calls.api.stats"
CALLS_API_CONFIG = "calls.api.config"
CALLS_API_PURGE = "calls.api.purge"
CALLS_API_DEAD_LETTERS = "calls.api.dead_letters"

CallStatus = Literal["NEW", "IN_PROGRESS", "DONE"]
CallPriority = Literal["low", "normal", "high", "urgent"]
QuickFilter = Literal["today", "last_hour", "open", "mine"]
SortOrder = Literal["newest", "oldest", "priority"]


class CallEvent(BaseModel):
    """One call as the telephone system or an integrator reports it (schema_version 1).

    Published as a JSONL line in `calls-YYYY-MM-DD.jsonl`, or as the `data` of an envelope on
    `calls.events.<source>`. Unknown fields are allowed and kept (encrypted) in the raw payload.
    """

    model_config = ConfigDict(extra="allow")

    schema_version: int = Field(1, description="Format version; only 1 exists.")
    event_id: str | None = Field(
        None,
        max_length=200,
        description="Unique id from the source; replays with the same id change nothing. "
        "When absent a hash of received_at, caller_number and the whole payload is used.",
    )
    received_at: str = Field(
        description="ISO 8601 time of the call, with offset (2024-05-01T09:15:00+02:00); "
        "a time without offset means Europe/Berlin.",
        examples=["2024-05-01T09:15:00+02:00", "2024-05-01T09:15:00"],
    )
    caller_number: str = Field(
        description="Caller's number, German national (030 1234567) or international (+49 30 1234567); "
        "stored as E.164.",
    )
    caller_name: str | None = Field(None, max_length=200)
    date_of_birth: str | None = Field(None, description="YYYY-MM-DD or DD.MM.YYYY.", examples=["1984-03-07"])
    topic: str = Field(description="What the call is about, free German text.", max_length=2000)
    priority: str | int | None = Field(
        None, description="low|normal|high|urgent (or niedrig|normal|hoch|dringend, or 1-4); default normal."
    )
    source: str | None = Field(None, max_length=64, description="Which system reported it (pbx name).")


class CallsChanged(BaseModel):
    """Calls were created, changed or deleted; ids and versions only, never content (fetch via calls.api.list)."""

    change: Literal["created", "updated", "deleted"]
    call_ids: list[int]
    versions: list[int] = Field(default_factory=list)


class ListCallsRequest(BaseModel):
    """`GET /api/calls`: filters, quick filters, sort, cursor pagination."""

    model_config = ConfigDict(populate_by_name=True)

    q: str | None = Field(None, max_length=200, description="Number prefix, or words of name and topic.")
    status: list[CallStatus] = Field(default_factory=list)
    from_: datetime | None = Field(None, alias="from")
    to: datetime | None = None
    assignee: str | None = None
    priority: list[CallPriority] = Field(default_factory=list)
    quick: list[QuickFilter] = Field(default_factory=list)
    sort: SortOrder = "newest"
    cursor: str | None = None
    limit: int = Field(50, ge=1, le=200)
    ids: list[int] = Field(default_factory=list, max_length=500, description="Only these calls (live updates).")
    masked: bool = Field(False, description="Ask for the masked view even when allowed to see PII.")
    with_total: bool = True


class CallSummary(BaseModel):
    """A call as a list shows it; number and date of birth masked unless `pii_masked` is false."""

    id: int
    received_at: datetime
    caller_number: str
    caller_name: str | None
    date_of_birth: str | None
    topic: str
    priority: CallPriority
    source: str
    status: CallStatus
    assignee: str | None
    version: int
    updated_at: datetime
    pii_masked: bool


class CallPage(BaseModel):
    items: list[CallSummary]
    next_cursor: str | None = None
    total: int | None = None
    total_exact: bool = True


class GetCallRequest(BaseModel):
    id: int
    masked: bool = False


class StatusEntry(BaseModel):
    from_status: CallStatus | None
    to_status: CallStatus
    actor_id: str
    at: datetime


class NoteView(BaseModel):
    id: int
    author_id: str
    body: str
    created_at: datetime


class AuditEntry(BaseModel):
    """Who did what to a call; ids and field names only, never content."""

    id: int
    action: str
    actor_id: str
    diff: dict[str, Any]
    at: datetime


class CallDetail(CallSummary):
    history: list[StatusEntry] = Field(default_factory=list)
    notes: list[NoteView] = Field(default_factory=list)
    audit: list[AuditEntry] = Field(default_factory=list)


class ChangeStatusRequest(BaseModel):
    """`PATCH /api/calls/{id}/status`: 409 when `version` is stale; DONE on a DONE call is a no-op."""

    id: int
    status: CallStatus
    version: int


class AddNoteRequest(BaseModel):
    id: int
    body: str = Field(min_length=1, max_length=10_000)


class AssignRequest(BaseModel):
    """Assign to a user id (None unassigns); `version` optional, 409 when given and stale."""

    id: int
    assignee: str | None
    version: int | None = None


class CallChanged(BaseModel):
    """Answer of status/note/assign: the call after the command and whether anything changed."""

    call: CallSummary
    changed: bool


class BulkRequest(BaseModel):
    """Bulk status and/or assignment; `versions` (id -> version) makes items conditional."""

    ids: list[int] = Field(min_length=1, max_length=500)
    status: CallStatus | None = None
    assign: bool = False
    assignee: str | None = None
    versions: dict[int, int] = Field(default_factory=dict)


class BulkItem(BaseModel):
    id: int
    outcome: Literal["changed", "unchanged", "conflict", "not_found"]
    version: int | None = None


class BulkResult(BaseModel):
    items: list[BulkItem]


class SubjectRequest(BaseModel):
    """Export or delete for one call or for every call of one caller number."""

    call_id: int | None = None
    caller_number: str | None = None


class ExportedCall(BaseModel):
    call: CallDetail
    raw_payload: dict[str, Any] | None


class ExportResult(BaseModel):
    calls: list[ExportedCall]
    exported_at: datetime


class DeleteResult(BaseModel):
    calls_deleted: int
    keys_shredded: int


class StatsRequest(BaseModel):
    days: int = Field(30, ge=1, le=3650)


class DayStats(BaseModel):
    day: date
    calls: int
    done: int
    avg_seconds_to_done: float | None


class TopicStats(BaseModel):
    topic: str
    calls: int


class StatsResult(BaseModel):
    """Live figures within the policy plus the anonymous aggregates kept after purges."""

    by_day: list[DayStats]
    top_topics: list[TopicStats]
    open_calls: int
    dead_letters: int
    retention_days: int


class ConfigRequest(BaseModel):
    """Read (all None) or change the ingest configuration (admin)."""

    retention_days: int | None = Field(None, ge=1, le=3650)


class ConfigResult(BaseModel):
    retention_days: int
    ingest_dir: str


class PurgeRequest(BaseModel):
    pass


class PurgeResult(BaseModel):
    run_id: int
    cutoff: datetime
    calls_deleted: int
    dead_letters_deleted: int
    files_deleted: int
    keys_shredded: int
    errors: list[str] = Field(default_factory=list)


class DeadLettersRequest(BaseModel):
    limit: int = Field(50, ge=1, le=500)


class DeadLetterView(BaseModel):
    """A rejected event: reason and where it came from; the raw line stays encrypted."""

    id: int
    created_at: datetime
    source: str
    origin: str
    position: int | None
    reason: str


class DeadLettersResult(BaseModel):
    items: list[DeadLetterView]
