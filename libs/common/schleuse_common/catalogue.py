"""The catalogue of bus subjects: payload models, replies, streams, producers and consumers.

`python -m schleuse_common.catalogue` regenerates docs/subjects.md and docs/asyncapi.yaml from it;
`--check` exits non-zero when the committed files differ. A test keeps both in step with the
contracts: every subject constant in `schleuse_common.contracts.*` must have an entry here.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from schleuse_common import contracts
from schleuse_common.auth import Actor
from schleuse_common.bus import STREAMS, DeadLetter, Envelope, ErrorBody, StreamSpec

Kind = Literal["request", "request_stream", "fact"]

# A subject: dot-separated lowercase tokens, at least two, wildcards `*`/`>` allowed as tokens.
SUBJECT_RE = re.compile(r"^[a-z][a-z0-9_-]*(\.([a-z0-9_-]+|\*|>))+$")
ROOT = Path(__file__).resolve().parents[3]
SUBJECTS_MD = ROOT / "docs" / "subjects.md"
ASYNCAPI_YAML = ROOT / "docs" / "asyncapi.yaml"
INTERNAL = "schleuse_common.bus"  # models that live in the bus module, not in contracts


@dataclass(frozen=True)
class Entry:
    """One subject as written in the catalogue; models are `module:Class` of `schleuse_common.contracts`."""

    subject: str
    kind: Kind
    payload: str
    summary: str
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    reply: str | None = None
    example_subject: str | None = None  # a concrete subject for wildcard entries


@dataclass(frozen=True)
class Subject:
    """A catalogue entry with its models resolved and its JetStream stream (if any) found."""

    subject: str
    kind: Kind
    payload: type[BaseModel]
    reply: type[BaseModel] | None
    summary: str
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    stream: str | None
    example_subject: str | None


_CALLS_API = "answered by ingest; the gateway maps `/api/calls...` here with the caller's signed actor"

ENTRIES: tuple[Entry, ...] = (
    # -- request/reply -------------------------------------------------------------------
    Entry(
        "chat.turn",
        "request_stream",
        "chat:TurnRequest",
        "Run one chat turn (DLP, provider, persist); the answer streams back as chunks.",
        ("gateway",),
        ("chat",),
        reply="chat:TurnChunk",
    ),
    Entry(
        "dlp.scan",
        "request",
        "dlp:ScanRequest",
        "Find PII in a text and replace it with stable per-thread placeholders, or block.",
        ("chat",),
        ("dlp",),
        reply="dlp:ScanResult",
    ),
    Entry(
        "dlp.restore",
        "request",
        "dlp:RestoreRequest",
        "Put a thread's placeholders back into a text shown to its user.",
        ("chat",),
        ("dlp",),
        reply="dlp:RestoreResult",
    ),
    Entry(
        "dlp.forget",
        "request",
        "dlp:ForgetRequest",
        "Delete the placeholder mapping of a thread (thread deleted or person shredded).",
        ("chat", "governance"),
        ("dlp",),
        reply="dlp:ForgetResult",
    ),
    *(
        Entry(f"dlp.policies.{name}", "request", f"dlp:{payload}", summary, producers, ("dlp",), reply=f"dlp:{reply}")
        for name, payload, reply, producers, summary in (
            ("list", "PoliciesListRequest", "PoliciesList", ("gateway",), "DLP policies of every scope (admin, dpo)."),
            (
                "put",
                "PolicyPut",
                "PoliciesList",
                ("gateway",),
                "Create or replace a scope's DLP policy: actions, allow-list terms, fail-open (admin; audited).",
            ),
            ("delete", "PolicyDelete", "PolicyDeleted", ("gateway",), "Remove a scope's DLP policy (admin; audited)."),
            (
                "fail_open",
                "FailOpenRequest",
                "FailOpenScopes",
                ("chat",),
                "Where turns may go out unscanned while DLP is down; chat asks at start and on `audit.dlp.policy_*`.",
            ),
        )
    ),
    Entry(
        "providers.generate",
        "request_stream",
        "providers:GenerateRequest",
        "Generate a completion from a routed model (after DLP); chunks stream back.",
        ("chat",),
        ("providers",),
        reply="providers:GenerateChunk",
    ),
    Entry(
        "providers.models",
        "request",
        "providers:ModelsRequest",
        "List the models a department may use.",
        ("gateway",),
        ("providers",),
        reply="providers:ModelsResult",
    ),
    Entry(
        "analytics.budget.check",
        "request",
        "budget:BudgetCheck",
        "Before a provider call: hold its estimated cost on the department's and assistant's budgets, "
        "or refuse naming the spent budget. `configured: false` means no budget exists at all.",
        ("providers",),
        ("analytics",),
        reply="budget:BudgetDecision",
    ),
    Entry(
        "analytics.budget.settle",
        "request",
        "budget:BudgetSettle",
        "After a provider call: replace the hold by the real cost, or release it (`actual_cost` null); "
        "idempotent on `call_id`.",
        ("providers",),
        ("analytics",),
        reply="budget:BudgetSettled",
    ),
    *(
        Entry(
            f"analytics.budgets.{name}",
            "request",
            f"budget:{payload}",
            summary,
            ("gateway",),
            ("analytics",),
            reply=f"budget:{reply}",
        )
        for name, payload, reply, summary in (
            ("list", "BudgetListRequest", "BudgetList", "Budgets with this month's spend and holds (admin)."),
            ("put", "BudgetFields", "BudgetView", "Create or change a monthly budget (admin; audited)."),
            ("delete", "BudgetKey", "BudgetDeleted", "Remove a budget (admin; audited)."),
        )
    ),
    *(
        Entry(
            f"providers.admin.{name}",
            "request",
            f"providers_admin:{payload}",
            summary,
            ("gateway",),
            ("providers",),
            reply=f"providers_admin:{reply}",
        )
        for name, payload, reply, summary in (
            ("providers.list", "AdminListRequest", "ProviderList", "Providers with masked secrets (admin)."),
            (
                "providers.put",
                "ProviderInput",
                "ProviderView",
                "Create or replace a provider; secrets are write-only, left out they are kept (admin; audited).",
            ),
            ("providers.delete", "ByName", "RegistryDeleted", "Remove a provider and shred its secrets (admin)."),
            ("models.list", "AdminListRequest", "ModelList", "The model catalogue with prices (admin)."),
            ("models.put", "ModelInput", "ModelView", "Create or change a catalogue model (admin; audited)."),
            ("models.delete", "ByName", "RegistryDeleted", "Remove a catalogue model (admin; audited)."),
            ("routing.get", "AdminListRequest", "RoutingSettings", "The routing: aliases, scopes, fallbacks (admin)."),
            ("routing.put", "RoutingSettings", "RoutingSettings", "Replace the routing (admin; audited)."),
        )
    ),
    Entry(
        "calls.api.list",
        "request",
        "calls:ListCallsRequest",
        "List calls: filters, search, sort, cursor pages; number and birth date masked per role. " + _CALLS_API,
        ("gateway",),
        ("ingest",),
        reply="calls:CallPage",
    ),
    Entry(
        "calls.api.get",
        "request",
        "calls:GetCallRequest",
        "One call with status history, notes and audit. " + _CALLS_API,
        ("gateway",),
        ("ingest",),
        reply="calls:CallDetail",
    ),
    Entry(
        "calls.api.status",
        "request",
        "calls:ChangeStatusRequest",
        "Change a call's status; 409 on a stale version, DONE is idempotent. " + _CALLS_API,
        ("gateway",),
        ("ingest",),
        reply="calls:CallChanged",
    ),
    Entry(
        "calls.api.note",
        "request",
        "calls:AddNoteRequest",
        "Add a note to a call. " + _CALLS_API,
        ("gateway",),
        ("ingest",),
        reply="calls:CallChanged",
    ),
    Entry(
        "calls.api.assign",
        "request",
        "calls:AssignRequest",
        "Assign a call (null unassigns). " + _CALLS_API,
        ("gateway",),
        ("ingest",),
        reply="calls:CallChanged",
    ),
    Entry(
        "calls.api.bulk",
        "request",
        "calls:BulkRequest",
        "Bulk status and/or assignment with a per-call outcome. " + _CALLS_API,
        ("gateway",),
        ("ingest",),
        reply="calls:BulkResult",
    ),
    Entry(
        "calls.api.export",
        "request",
        "calls:SubjectRequest",
        "Export one call or every call of a caller number (Art. 15; audited). " + _CALLS_API,
        ("gateway",),
        ("ingest",),
        reply="calls:ExportResult",
    ),
    Entry(
        "calls.api.delete",
        "request",
        "calls:SubjectRequest",
        "Erase one call or every call of a caller number, shredding keys (Art. 17; audited). " + _CALLS_API,
        ("gateway",),
        ("ingest",),
        reply="calls:DeleteResult",
    ),
    Entry(
        "calls.api.stats",
        "request",
        "calls:StatsRequest",
        "Statistics: calls per day, top topics, open calls, dead letters (admin). " + _CALLS_API,
        ("gateway",),
        ("ingest",),
        reply="calls:StatsResult",
    ),
    Entry(
        "calls.api.config",
        "request",
        "calls:ConfigRequest",
        "Read or set the retention period (admin; audited). " + _CALLS_API,
        ("gateway",),
        ("ingest",),
        reply="calls:ConfigResult",
    ),
    Entry(
        "calls.api.purge",
        "request",
        "calls:PurgeRequest",
        "Run the retention purge now (admin). " + _CALLS_API,
        ("gateway",),
        ("ingest",),
        reply="calls:PurgeResult",
    ),
    Entry(
        "calls.api.dead_letters",
        "request",
        "calls:DeadLettersRequest",
        "Call events that could not be ingested, reasons only (admin). " + _CALLS_API,
        ("gateway",),
        ("ingest",),
        reply="calls:DeadLettersResult",
    ),
    # -- JetStream facts -----------------------------------------------------------------
    *(
        Entry(
            f"chat.api.{name}",
            "request",
            f"chat_api:{payload}",
            summary,
            ("gateway",),
            ("chat",),
            reply=f"chat_api:{reply}",
        )
        for name, payload, reply, summary in (
            (
                "assistants.list",
                "PageRequest",
                "Page[AssistantSummary]",
                "The caller's department's assistants.",
            ),
            ("assistants.admin_list", "PageRequest", "Page[Assistant]", "Every assistant (admin)."),
            ("assistants.get", "ById", "Assistant", "One assistant (admin)."),
            ("assistants.create", "AssistantFields", "Assistant", "Create an assistant (admin)."),
            ("assistants.update", "AssistantUpdate", "Assistant", "Change an assistant (admin; unset fields stay)."),
            ("threads.list", "PageRequest", "Page[ThreadSummary]", "The caller's threads."),
            ("threads.get", "ById", "ThreadView", "One of the caller's threads with its messages (decrypted)."),
            ("threads.rename", "ThreadRename", "ThreadSummary", "Rename a thread."),
            ("threads.delete", "ById", "Deleted", "Delete a thread (and its placeholder mapping)."),
            ("feedback.put", "FeedbackRequest", "FeedbackView", "Rate an answer (thumbs, stars, labels, comment)."),
            ("prompts.list", "PageRequest", "Page[PromptView]", "The caller's saved prompts."),
            ("prompts.create", "PromptFields", "PromptView", "Save a prompt (encrypted)."),
            ("prompts.get", "ById", "PromptView", "One saved prompt."),
            ("prompts.delete", "ById", "Deleted", "Delete a saved prompt."),
            ("prompts.submit", "ById", "LibraryPrompt", "Submit a saved prompt (redacted) to the department library."),
            ("library.search", "LibrarySearch", "Page[LibraryPrompt]", "Full-text search of the department library."),
            ("library.use", "LibraryUse", "LibraryUsed", "Fill a library prompt's variables."),
            ("library.rate", "LibraryRate", "LibraryPrompt", "Rate a library prompt."),
            ("library.candidates", "PageRequest", "Page[LibraryPrompt]", "Library candidates to review (steward)."),
            ("library.review", "ReviewDecision", "LibraryPrompt", "Approve or reject a library candidate (steward)."),
            ("datasets.items", "DatasetItemsRequest", "Page[DatasetItem]", "Dataset items by status (steward)."),
            ("datasets.review", "ReviewDecision", "DatasetItem", "Approve or reject a dataset item (steward)."),
            ("datasets.export", "DatasetExportRequest", "DatasetExport", "Export approved items as JSONL (steward)."),
        )
    ),
    Entry(
        "chat.feedback.positive",
        "fact",
        "chat_api:FeedbackPositive",
        "A positively rated answer enters the dataset quarantine (ids only).",
        ("chat",),
        ("chat",),
    ),
    Entry(
        "chat.message.stored",
        "fact",
        "chat:TurnStored",
        "Reserved in the contracts (not published yet): a chat exchange was stored, encrypted.",
        ("chat",),
        (),
    ),
    Entry(
        "chat.turn.completed",
        "fact",
        "chat_api:TurnRecord",
        "A turn finished; persisted from the stream, encrypted under the owner's data key.",
        ("chat",),
        ("chat",),
    ),
    Entry(
        "usage.recorded",
        "fact",
        "usage:UsageRecorded",
        "Tokens, cost and routing of one provider call; ids only.",
        ("chat", "providers"),
        ("analytics",),
    ),
    Entry(
        "policy.event",
        "fact",
        "policy:PolicyEvent",
        "A DLP finding or policy decision (entity types and counts, never values); "
        "`budget.soft_limit` when a call passes a budget's soft limit; `dlp.fail_open` when a turn went out "
        "unscanned because DLP was down and an admin allowed failing open.",
        ("chat", "dlp", "providers"),
        ("governance", "analytics"),
    ),
    Entry(
        "audit.>",
        "fact",
        "audit:AuditEvent",
        "`audit.<area>.<action>`: who did what to which id; hash-chained by governance. Never content.",
        ("gateway", "chat", "dlp", "providers", "governance", "analytics", "ingest"),
        ("governance",),
        example_subject="audit.assistant.created",
    ),
    Entry(
        "calls.events.>",
        "fact",
        "calls:CallEvent",
        "`calls.events.<source>`: integrators publish call events here (or a bare event object). "
        "Set `Nats-Msg-Id` to the envelope id; replays with the same `event_id` change nothing.",
        ("integrator",),
        ("ingest",),
        example_subject="calls.events.pbx1",
    ),
    Entry(
        "calls.changed.>",
        "fact",
        "calls:CallsChanged",
        "Calls were created, updated or deleted (ids and versions only); live views refetch.",
        ("ingest",),
        ("gateway",),
        example_subject="calls.changed.updated",
    ),
    Entry(
        "calls.changed.created",
        "fact",
        "calls:CallsChanged",
        "New calls (ids and versions only).",
        ("ingest",),
        ("gateway",),
    ),
    Entry(
        "calls.changed.updated",
        "fact",
        "calls:CallsChanged",
        "Changed calls (ids and versions only).",
        ("ingest",),
        ("gateway",),
    ),
    Entry(
        "calls.changed.deleted", "fact", "calls:CallsChanged", "Deleted calls (ids only).", ("ingest",), ("gateway",)
    ),
    Entry(
        "deadletter.>",
        "fact",
        f"{INTERNAL}:DeadLetter",
        "`deadletter.<stream>.<durable>`: a message a consumer gave up on, with the reason.",
        ("gateway", "chat", "dlp", "providers", "governance", "analytics", "ingest"),
        (),
        example_subject="deadletter.USAGE.analytics-usage",
    ),
)


# -- discovery -------------------------------------------------------------------------


def contract_modules() -> list[str]:
    """Names of the modules under `schleuse_common.contracts` (found on disk, so new ones count)."""
    return sorted(m.name for m in pkgutil.iter_modules(contracts.__path__) if not m.name.startswith("_"))


def discovered_subjects() -> dict[str, str]:
    """Every module-level UPPER_CASE str constant in the contracts whose value is a subject -> `module.NAME`."""
    found: dict[str, str] = {}
    for name in contract_modules():
        module = importlib.import_module(f"{contracts.__name__}.{name}")
        for attr, value in vars(module).items():
            if attr.isupper() and isinstance(value, str) and SUBJECT_RE.match(value):
                found.setdefault(value, f"{name}.{attr}")
    return found


def _resolve(ref: str) -> type[BaseModel] | None:
    """The model `module:Class`; None while the contracts module does not exist yet."""
    module_name, _, cls_name = ref.partition(":")
    full = module_name if module_name == INTERNAL else f"{contracts.__name__}.{module_name}"
    try:
        module = importlib.import_module(full)
    except ModuleNotFoundError as e:
        if e.name == full:
            return None
        raise
    base_name, _, arg = cls_name.partition("[")
    model = getattr(module, base_name)  # a missing class is drift: fail loudly
    if arg:  # a generic such as `Page[Assistant]`
        model = model[getattr(module, arg.rstrip("]"))]
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{ref} is not a pydantic model")
    return model


def stream_of(subject: str, streams: tuple[StreamSpec, ...] = STREAMS) -> str | None:
    """The JetStream stream whose subjects capture `subject` (wildcards match as NATS does)."""
    for spec in streams:
        if any(_captures(pattern, subject) for pattern in spec.subjects):
            return spec.name
    return None


def _captures(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, part in enumerate(p):
        if part == ">":
            return len(s) > i
        if i >= len(s) or part not in ("*", s[i]):
            return False
    return len(p) == len(s)


def catalogue() -> list[Subject]:
    """Every catalogued subject whose contracts exist, sorted by subject."""
    out: list[Subject] = []
    for e in ENTRIES:
        payload = _resolve(e.payload)
        reply = _resolve(e.reply) if e.reply else None
        if payload is None or (e.reply and reply is None):
            continue
        stream = stream_of(e.example_subject or e.subject) if e.kind == "fact" else None
        out.append(
            Subject(e.subject, e.kind, payload, reply, e.summary, e.producers, e.consumers, stream, e.example_subject)
        )
    return sorted(out, key=lambda s: s.subject)


def uncatalogued() -> dict[str, str]:
    """Subject constants in the contracts that have no catalogue entry (should be empty)."""
    known = {s.subject for s in catalogue()}
    return {subj: where for subj, where in discovered_subjects().items() if subj not in known}


# -- rendering -------------------------------------------------------------------------

_KIND_TEXT = {"request": "request/reply", "request_stream": "request, streamed reply", "fact": "JetStream fact"}


def model_name(model: type[BaseModel]) -> str:
    """The model's name as a schema key and anchor (`Page[Assistant]` -> `Page_Assistant_`, as pydantic names it)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", model.__name__)


def _schemas(subjects: list[Subject]) -> dict[str, dict[str, Any]]:
    """JSON Schema of every model used, by class name (definitions inlined per model)."""
    models: dict[str, type[BaseModel]] = {"Actor": Actor, "ErrorBody": ErrorBody}
    for s in subjects:
        for m in (s.payload, s.reply):
            if m is not None:
                prior = models.setdefault(model_name(m), m)
                if prior is not m:
                    raise ValueError(f"two payload models are both named {model_name(m)}")
    return {name: models[name].model_json_schema() for name in sorted(models)}


def _envelope_schema() -> dict[str, Any]:
    schema = Envelope[DeadLetter].model_json_schema()
    props = dict(schema["properties"])
    props["data"] = {"description": "The payload: the subject's model (see below)."}
    return {"title": "Envelope", "type": "object", "properties": props, "required": schema.get("required", [])}


def render_markdown(subjects: list[Subject]) -> str:
    """docs/subjects.md: envelope, how to publish, a table of subjects, then each payload's JSON Schema."""
    lines = [
        "# Bus subjects and schemas",
        "",
        "<!-- Generated by `python -m schleuse_common.catalogue` from libs/common/schleuse_common/catalogue.py",
        "     and schleuse_common.contracts. Do not edit by hand: a test fails when this file drifts. -->",
        "",
        "Every Schleuse service talks over NATS. Subject names and payload versions are part of the public",
        "contract. Request/reply subjects are served by a queue group (one instance answers); facts go to",
        "JetStream streams and are consumed by durable pull consumers that are idempotent on the envelope `id`.",
        "",
        "## The envelope",
        "",
        "Every message body (request, fact) is one JSON object:",
        "",
        "| field | type | meaning |",
        "|---|---|---|",
        "| `id` | string (UUIDv7) | unique per message; consumers dedupe on it, JetStream dedupes on `Nats-Msg-Id` = `id` |",  # noqa: E501
        "| `type` | string | what the message is, usually the subject (`usage.recorded`) |",
        "| `version` | integer | payload version of that type; 1 until a breaking change |",
        "| `occurred_at` | string (RFC 3339, UTC) | when it happened, e.g. `2024-05-01T07:15:00Z` |",
        "| `trace_id` | string or null | W3C trace id for correlation (the `traceparent` header carries the span) |",
        "| `actor` | object or null | pseudonymous actor: `id`, `kind` (user/api_key/service), `roles`, `department`, "
        "`key_id`, `sig` (HMAC by the gateway; services reject forged actors) |",
        "| `data` | object | the payload: the subject's model below |",
        "",
        "Replies of request/reply subjects are the bare reply model (no envelope). A failure is an `ErrorBody`",
        "(`code`, `message`, `status`, `retry_after`) with header `Schleuse-Error: 1`. Streamed replies send",
        "chunks on the reply inbox, then an empty message with header `Schleuse-Stream: end` (or `error` with",
        "an `ErrorBody`).",
        "",
        "## Publishing call events (integrators)",
        "",
        "Publish to `calls.events.<source>` (JetStream stream `CALLS`), one call per message, and wait for the",
        "JetStream ack. Set the header `Nats-Msg-Id` to the envelope `id` so a retried publish within two",
        "minutes is dropped by the stream; ingest also ignores replays with the same `event_id`.",
        "",
        "```bash",
        "nats pub calls.events.pbx1 --header Nats-Msg-Id:0190f3a0-7c1e-7b1a-9a4e-2f0c5d1e8a01 \\",
        '  \'{"id":"0190f3a0-7c1e-7b1a-9a4e-2f0c5d1e8a01","type":"calls.event","version":1,',
        '    "occurred_at":"2024-05-01T07:15:00Z","trace_id":null,"actor":null,',
        '    "data":{"schema_version":1,"event_id":"pbx1-4711","received_at":"2024-05-01T09:15:00+02:00",',
        '             "caller_number":"+49 30 1234567","topic":"Rückfrage zur Rechnung","priority":"high"}}\'',
        "```",
        "",
        "```python",
        "import json, nats, uuid",
        'nc = await nats.connect("nats://nats:4222")',
        "js = nc.jetstream()",
        "event_id = str(uuid.uuid4())",
        'envelope = {"id": event_id, "type": "calls.event", "version": 1, "occurred_at": "2024-05-01T07:15:00Z",',
        '            "trace_id": None, "actor": None, "data": {...}}',
        'await js.publish("calls.events.pbx1", json.dumps(envelope).encode(), headers={"Nats-Msg-Id": event_id})',
        "```",
        "",
        "Usage and audit facts can be consumed the same way: create a durable pull consumer on stream `USAGE`",
        "(`usage.recorded`) or `AUDIT` (`audit.>`) and ack after you have stored the fact.",
        "",
        "## Streams",
        "",
        "| stream | subjects | retention |",
        "|---|---|---|",
    ]
    for spec in STREAMS:
        subjects_text = ", ".join(f"`{p}`" for p in spec.subjects)
        lines.append(f"| `{spec.name}` | {subjects_text} | {spec.max_age_s / 86400:g} days |")
    lines += [
        "",
        "## Subjects",
        "",
        "| subject | kind | stream | payload (`data`) | reply | producers | consumers | what |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in subjects:
        reply = f"[`{model_name(s.reply)}`](#{model_name(s.reply).lower()})" if s.reply else "—"
        lines.append(
            f"| `{s.subject}` | {_KIND_TEXT[s.kind]} | {f'`{s.stream}`' if s.stream else '—'} | "
            f"[`{model_name(s.payload)}`](#{model_name(s.payload).lower()}) | {reply} | "
            f"{', '.join(s.producers) or '—'} | {', '.join(s.consumers) or '—'} | {s.summary} |"
        )
    lines += ["", "## Schemas", "", "### Envelope", "", "```json", _json(_envelope_schema()), "```", ""]
    for name, schema in _schemas(subjects).items():
        lines += [f"### {name}", "", "```json", _json(schema), "```", ""]
    return "\n".join(lines)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _channel_id(subject: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", subject.replace(">", "all").replace("*", "any")).strip("_")


def render_asyncapi(subjects: list[Subject]) -> str:
    """docs/asyncapi.yaml: AsyncAPI 3.0 with one channel per subject and operations per direction."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Envelope": _envelope_schema()}
    defs: dict[str, Any] = {}
    for name, schema in _schemas(subjects).items():
        defs.update(schema.pop("$defs", {}))
        schemas[name] = schema
    for name, schema in defs.items():
        schemas.setdefault(name, schema)

    def message(model: type[BaseModel], enveloped: bool) -> str:
        key = f"{model_name(model)}Envelope" if enveloped else model_name(model)
        if key not in messages:
            ref = {"$ref": f"#/components/schemas/{model_name(model)}"}
            payload: dict[str, Any] = (
                {"allOf": [{"$ref": "#/components/schemas/Envelope"}, {"properties": {"data": ref}}]}
                if enveloped
                else ref
            )
            messages[key] = {"name": key, "contentType": "application/json", "payload": payload}
            if enveloped:
                messages[key]["headers"] = {
                    "type": "object",
                    "properties": {
                        "Nats-Msg-Id": {"type": "string", "description": "the envelope id (JetStream dedupe)"},
                        "traceparent": {"type": "string", "description": "W3C trace context"},
                    },
                }
        return key

    for s in subjects:
        cid = _channel_id(s.subject)
        msg = message(s.payload, enveloped=True)
        channel: dict[str, Any] = {
            "address": s.subject,
            "description": s.summary,
            "messages": {msg: {"$ref": f"#/components/messages/{msg}"}},
        }
        if s.stream:
            channel["x-jetstream-stream"] = s.stream
        op: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": s.summary,
            "x-producers": list(s.producers),
            "x-consumers": list(s.consumers),
        }
        if s.reply is not None:
            reply_cid = f"{cid}_reply"
            rmsg = message(s.reply, enveloped=False)
            err = message(ErrorBody, enveloped=False)
            channels[reply_cid] = {
                "address": None,
                "description": f"Reply inbox of {s.subject}"
                + (" (chunks, then an end marker)" if s.kind == "request_stream" else ""),
                "messages": {
                    rmsg: {"$ref": f"#/components/messages/{rmsg}"},
                    err: {"$ref": f"#/components/messages/{err}"},
                },
            }
            op["reply"] = {
                "address": {"location": "$message.header#/reply_to"},
                "channel": {"$ref": f"#/channels/{reply_cid}"},
            }
        channels[cid] = channel
        operations[f"{cid}_{'serve' if s.reply else 'consume'}"] = op
    doc = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Schleuse bus",
            "version": "1.0.0",
            "description": "Subjects, payloads and streams of the Schleuse platform on NATS. "
            "Generated by `python -m schleuse_common.catalogue`; see docs/subjects.md.",
        },
        "defaultContentType": "application/json",
        "servers": {"nats": {"host": "nats:4222", "protocol": "nats", "description": "NATS with JetStream"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": dict(sorted(messages.items())), "schemas": dict(sorted(schemas.items()))},
    }
    header = "# Generated by `python -m schleuse_common.catalogue`. Do not edit by hand.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)


def _fix_refs(text: str) -> str:
    """Pydantic writes `#/$defs/X`; in AsyncAPI every schema lives under components."""
    return text.replace("#/$defs/", "#/components/schemas/")


def generated() -> dict[Path, str]:
    """The files this module writes and their exact content."""
    subjects = catalogue()
    return {SUBJECTS_MD: render_markdown(subjects) + "\n", ASYNCAPI_YAML: _fix_refs(render_asyncapi(subjects))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schleuse_common.catalogue", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed docs differ")
    args = parser.parse_args(argv)
    missing = uncatalogued()
    if missing:
        for subject, where in sorted(missing.items()):
            print(f"not in the catalogue: {subject} ({where}); add an Entry to catalogue.py", file=sys.stderr)
        return 1
    stale = []
    for path, text in generated().items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        if args.check:
            stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"out of date: {path.relative_to(ROOT)} (run python -m schleuse_common.catalogue)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
