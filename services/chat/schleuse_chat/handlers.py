"""What happens when a chat turn arrives: DLP lock, provider stream, restore for the user, durable record."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog

from schleuse_chat import store
from schleuse_chat.assistants import AssistantCatalog
from schleuse_chat.domain.context import default_title, fit_context, input_budget, split_current, with_system_prompt
from schleuse_chat.domain.turns import last_user_text, needs_scan
from schleuse_chat.settings import ChatSettings
from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError, Envelope, Unavailable
from schleuse_common.contracts.audit import AuditEvent, audit_subject
from schleuse_common.contracts.chat import CHAT_TURN, CHAT_TURN_COMPLETED, TurnChunk, TurnRequest
from schleuse_common.contracts.chat_api import Assistant, ChatTurnFinal, TurnRecord
from schleuse_common.contracts.dlp import (
    DLP_AUDIT_AREA,
    DLP_POLICIES_FAIL_OPEN,
    DLP_RESTORE,
    DLP_SCAN,
    FAIL_OPEN_ACTION,
    POLICY_CHANGE_ACTIONS,
    FailOpenRequest,
    FailOpenScopes,
    FindingSummary,
    PlaceholderStreamBuffer,
    RestoreRequest,
    RestoreResult,
    ScanRequest,
    ScanResult,
    has_placeholder,
)
from schleuse_common.contracts.policy import POLICY_EVENT, PolicyEvent
from schleuse_common.contracts.providers import (
    PROVIDERS_GENERATE,
    PROVIDERS_MODELS,
    ChatMessage,
    GenerateChunk,
    GenerateRequest,
    ModelsRequest,
    ModelsResult,
    coalesce_chunks,
    merge_tool_calls,
)
from schleuse_common.crypto import DataKeyring, DecryptionError, decrypt_text, encrypt_text
from schleuse_common.db import Database, first_deliveries
from schleuse_common.ids import new_id, utcnow

log = structlog.get_logger("schleuse.chat")

RECENT_THREADS = 2000
RECENT_PER_THREAD = 8
FAIL_OPEN_KIND = "dlp.fail_open"  # `policy.event` kind of a turn sent unscanned while DLP was down


@dataclass
class ContextWindows:
    """Context windows of the provider catalogue, asked once and cached (unknown models get the default)."""

    bus: Bus
    default: int
    ttl: float = 300.0
    _windows: dict[str, int] = field(default_factory=dict)
    _loaded_at: float = -1e9

    async def of(self, model: str) -> int:
        """The context window of `model` (an alias or a catalogue id)."""
        if time.monotonic() - self._loaded_at > self.ttl:
            self._loaded_at = time.monotonic()  # also on failure: never ask on every turn
            try:
                result = await self.bus.request(PROVIDERS_MODELS, ModelsRequest(), ModelsResult, timeout=1.0)
                self._windows = {m.id: m.context_window for m in result.models if m.context_window}
            except BusError:
                log.warning("chat.models_unavailable")
        return self._windows.get(model, self.default)


@dataclass
class DlpFailOpen:
    """Where an admin lets turns go out unscanned while DLP is down; kept here because then DLP cannot be asked.

    Asked from dlp at start, after every `audit.dlp.policy_*` notice and every `refresh_seconds`; the last
    answer is kept while dlp is away. Nothing known means closed: every turn is refused.
    """

    bus: Bus
    refresh_seconds: float = 60.0
    scopes: FailOpenScopes = field(default_factory=FailOpenScopes)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        """Listen for policy changes and keep the scopes fresh in the background."""

        async def on_audit(msg: Any) -> None:
            if msg.subject.rsplit(".", 1)[-1] in POLICY_CHANGE_ACTIONS:
                self._changed.set()

        self.bus._subs.append(await self.bus.nc.subscribe(audit_subject(DLP_AUDIT_AREA, "*"), cb=on_audit))
        self.bus._tasks.append(asyncio.create_task(self._keep_fresh(), name="chat:dlp-fail-open"))

    async def refresh(self) -> None:
        """Ask dlp now; raises BusError when it does not answer (the last scopes stay)."""
        self.scopes = await self.bus.request(DLP_POLICIES_FAIL_OPEN, FailOpenRequest(), FailOpenScopes, timeout=2.0)

    async def _keep_fresh(self) -> None:
        while True:
            try:
                await self.refresh()
                wait = self.refresh_seconds
            except Exception as e:  # dlp not (yet) there, or a bad answer: keep the last scopes, ask again soon
                if not isinstance(e, BusError):
                    log.warning("chat.fail_open_refresh_failed", error=type(e).__name__)
                wait = 2.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=wait)
            self._changed.clear()


@dataclass
class Exchange:
    """One stored turn as the next turn's history."""

    turn_id: str
    prompt: str
    answer: str
    owner_id: str = ""
    assistant_id: str | None = None


@dataclass
class ChatHandlers:
    bus: Bus
    db: Database
    keyring: DataKeyring
    settings: ChatSettings
    catalog: AssistantCatalog
    windows: ContextWindows | None = None
    fail_open: DlpFailOpen | None = None
    # Turns published but perhaps not yet persisted, so a quick follow-up still sees them.
    _recent: OrderedDict[str, list[Exchange]] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if self.windows is None:
            self.windows = ContextWindows(self.bus, self.settings.default_context_window)
        if self.fail_open is None:
            self.fail_open = DlpFailOpen(self.bus)

    async def register(self) -> None:
        """Serve `chat.turn` and persist completed turns from the CHAT stream."""
        assert self.fail_open is not None
        await self.fail_open.start()
        await self.bus.serve_stream(CHAT_TURN, TurnRequest, self.turn, queue="chat")
        await self.bus.consume_batches(
            stream="CHAT",
            durable="chat-persist",
            filter_subject=CHAT_TURN_COMPLETED,
            data_model=TurnRecord,
            handler=self.persist,
        )

    async def turn(self, env: Envelope[TurnRequest]) -> AsyncIterator[TurnChunk]:
        """Run one turn and stream the answer, restored for the user."""
        actor = _require_actor(env.actor)
        req = env.data
        started = time.perf_counter()
        thread_id = req.thread_id or new_id()
        history: list[Exchange] = []
        assistant_id = req.assistant_id
        if req.thread_id:
            thread_assistant, history = await self._history(req.thread_id, actor)
            assistant_id = assistant_id or thread_assistant
        assistant = await self.catalog.usable(assistant_id, actor) if assistant_id else None
        model = assistant.model if assistant else req.model
        max_tokens = req.max_tokens or (assistant.max_tokens if assistant else None)
        messages = await self._context(req.messages, history, assistant, model, max_tokens)
        outgoing, findings, found_any = await self._redact(messages, thread_id, assistant_id, actor)
        generate = GenerateRequest(
            model=model,
            messages=outgoing,
            temperature=req.temperature
            if req.temperature is not None
            else (assistant.temperature if assistant else None),
            max_tokens=max_tokens,
            top_p=req.top_p if req.top_p is not None else (assistant.top_p if assistant else None),
            stop=req.stop,
            department=actor.department,
            assistant_id=assistant_id,
            allow_escalation=assistant.allow_escalation if assistant else False,
            stream=req.stream,
        )
        restore = found_any or req.thread_id is not None
        buffer = PlaceholderStreamBuffer()
        answer: list[str] = []
        calls: list[dict[str, Any]] = []
        final: GenerateChunk | None = None
        async for chunk in self.bus.request_stream(
            PROVIDERS_GENERATE,
            generate,
            GenerateChunk,
            actor=actor,
            timeout=self.settings.provider_timeout_seconds,
            coalesce=coalesce_chunks,
        ):
            text = buffer.push(chunk.delta) if restore else chunk.delta
            if restore and chunk.finish_reason is not None:
                text += buffer.flush()
            if restore and text and has_placeholder(text):
                text = await self._restore(text, thread_id, actor)
            answer.append(text)
            calls.extend(chunk.tool_calls or [])
            if chunk.finish_reason is not None:
                final = chunk.model_copy(update={"delta": text})
            elif req.stream and (text or chunk.tool_calls):
                yield TurnChunk(delta=text, tool_calls=chunk.tool_calls)
        if final is None:
            raise BusError("upstream_incomplete", "the provider ended the answer without finishing it", 502)
        if not req.stream:  # a plain completion goes back whole: one bus message, not one per token
            final = final.model_copy(update={"delta": "".join(answer), "tool_calls": merge_tool_calls(calls) or None})
        record = await self._record(
            req,
            actor,
            thread_id,
            assistant_id,
            "".join(answer),
            final,
            started,
            findings,
            new_thread=req.thread_id is None,
        )
        yield ChatTurnFinal(
            **final.model_dump(),
            turn_id=record.turn_id,
            thread_id=thread_id,
            message_id=record.answer_message_id,
        )

    async def _context(
        self,
        messages: list[ChatMessage],
        history: list[Exchange],
        assistant: Assistant | None,
        model: str,
        max_tokens: int | None,
    ) -> list[ChatMessage]:
        """The assistant's system prompt, then as much history as fits the model's context, then this turn."""
        if assistant is None and not history:
            return messages
        system, rest = with_system_prompt(assistant.system_prompt if assistant else "", messages)
        earlier, current = split_current(rest)
        stored = [
            m
            for ex in history
            for m in (ChatMessage(role="user", content=ex.prompt), ChatMessage(role="assistant", content=ex.answer))
        ]
        assert self.windows is not None
        window = (assistant.context_window if assistant else None) or await self.windows.of(model)
        return fit_context(system, [*stored, *earlier], current, input_budget(window, max_tokens))

    async def _history(self, thread_id: str, actor: Actor) -> tuple[str | None, list[Exchange]]:
        """The owner's thread (its assistant, its turns); 404 when unknown or someone else's. One query."""
        t, m = store.threads, store.messages
        since = self._retention_since()
        stmt = (
            sa.select(t.c.owner_id, t.c.assistant_id, m.c.turn_id, m.c.role, m.c.key_id, m.c.content_ct)
            .select_from(t.outerjoin(m, sa.and_(m.c.thread_id == t.c.id, store.not_older_than(m.c.created_at, since))))
            .where(t.c.id == thread_id)
            .order_by(m.c.created_at, m.c.turn_id, m.c.role.desc())
        )
        async with self.db.session() as session:
            rows = (await session.execute(stmt)).all()
            if rows and rows[0].owner_id != actor.id:
                raise BusError("not_found", "no such thread", 404)
            turns: dict[str, Exchange] = {}
            for row in rows:
                if row.turn_id is None:
                    continue
                key = await self.keyring.by_id(session, row.key_id)
                text = _open(key, row.content_ct, thread_id)
                if text is None:
                    continue
                ex = turns.setdefault(row.turn_id, Exchange(row.turn_id, "", "", actor.id))
                if row.role == "user":
                    ex.prompt = text
                else:
                    ex.answer = text
        recent = self._recent.get(thread_id, [])
        if any(ex.owner_id != actor.id for ex in recent):
            raise BusError("not_found", "no such thread", 404)
        pending = [ex for ex in recent if ex.turn_id not in turns]
        if not rows and not pending:
            raise BusError("not_found", "no such thread", 404)
        if rows and not pending:
            self._recent.pop(thread_id, None)
        assistant_id = rows[0].assistant_id if rows else pending[0].assistant_id
        return assistant_id, [*turns.values(), *pending]

    def _retention_since(self) -> datetime | None:
        days = self.settings.retention_days
        return utcnow() - timedelta(days=days) if days else None

    def forget_thread(self, thread_id: str) -> None:
        """Drop what this process still holds of a deleted thread."""
        self._recent.pop(thread_id, None)

    def _remember(self, thread_id: str, exchange: Exchange) -> None:
        recent = self._recent.setdefault(thread_id, [])
        recent.append(exchange)
        del recent[:-RECENT_PER_THREAD]  # only the newest can still be on their way to the database
        self._recent.move_to_end(thread_id)
        while len(self._recent) > RECENT_THREADS:
            self._recent.popitem(last=False)

    async def _redact(
        self, messages: list[ChatMessage], thread_id: str, assistant_id: str | None, actor: Actor
    ) -> tuple[list[ChatMessage], list[FindingSummary], bool]:
        """Every message that leaves the house passes the DLP lock; fail closed when DLP cannot answer."""
        todo = [i for i, m in enumerate(messages) if needs_scan(m)]
        try:
            results = await asyncio.gather(
                *(
                    self.bus.request(
                        DLP_SCAN,
                        ScanRequest(
                            text=messages[i].content or "",
                            thread_id=thread_id,
                            assistant_id=assistant_id,
                            department=actor.department,
                        ),
                        ScanResult,
                        actor=actor,
                        timeout=self.settings.dlp_timeout_seconds,
                    )
                    for i in todo
                )
            )
        except BusError as e:
            assert self.fail_open is not None
            if e.status < 500 or not self.fail_open.scopes.applies(
                assistant_id=assistant_id, department=actor.department
            ):
                if isinstance(e, Unavailable):
                    raise BusError("dlp_unavailable", "the DLP check is unavailable; nothing was sent", 503) from e
                raise
            await self._record_fail_open(thread_id, assistant_id, actor, e)
            return list(messages), [], False
        outgoing = list(messages)
        for i, result in zip(todo, results, strict=True):
            if result.blocked:
                kinds = ", ".join(sorted({f.entity_type for f in result.findings if f.action == "block"}))
                raise BusError("dlp_blocked", f"the message contains data that must not leave the house ({kinds})", 422)
            outgoing[i] = outgoing[i].model_copy(update={"content": result.text})
        found_any = any(r.findings for r in results)
        current = results[-1].findings if results and messages[todo[-1]].role == "user" else []
        return outgoing, current, found_any

    async def _record_fail_open(self, thread_id: str, assistant_id: str | None, actor: Actor, error: BusError) -> None:
        """An admin let this scope fail open: a policy event and an audit entry first, or the turn is refused."""
        log.warning("chat.dlp_fail_open", code=error.code, assistant_id=assistant_id)
        event = PolicyEvent(
            kind=FAIL_OPEN_KIND,
            user_id=actor.id,
            department=actor.department,
            assistant_id=assistant_id,
            thread_id=thread_id,
            decision="allow",
            detail=f"DLP {error.code}: sent unscanned (fail-open set by an admin)",
        )
        audit = AuditEvent(
            action=f"{DLP_AUDIT_AREA}.{FAIL_OPEN_ACTION}",
            target_type="thread",
            target_id=thread_id,
            outcome="fail_open",
            detail={"assistant_id": assistant_id, "department": actor.department, "reason": error.code},
        )
        try:
            await asyncio.gather(
                self.bus.publish(POLICY_EVENT, event, actor=actor),
                self.bus.publish(audit_subject(DLP_AUDIT_AREA, FAIL_OPEN_ACTION), audit, actor=actor),
            )
        except Exception as e:  # never send unscanned without the record of it
            log.warning("chat.dlp_fail_open_unrecorded", error=type(e).__name__)
            raise BusError("dlp_unavailable", "the DLP check is unavailable; nothing was sent", 503) from e

    async def _restore(self, text: str, thread_id: str, actor: Actor) -> str:
        result = await self.bus.request(
            DLP_RESTORE,
            RestoreRequest(text=text, thread_id=thread_id),
            RestoreResult,
            actor=actor,
            timeout=self.settings.dlp_timeout_seconds,
        )
        return result.text

    async def _record(
        self,
        req: TurnRequest,
        actor: Actor,
        thread_id: str,
        assistant_id: str | None,
        answer: str,
        final: GenerateChunk,
        started: float,
        findings: list[FindingSummary],
        *,
        new_thread: bool,
    ) -> TurnRecord:
        """Encrypt the turn under the owner's key and put it on the CHAT stream before the client sees the end."""
        async with self.db.session() as session:
            dk = await self.keyring.for_owner(session, actor.id)
        prompt = last_user_text(req.messages)
        turn = TurnRecord(
            turn_id=new_id(),
            thread_id=thread_id,
            owner_id=actor.id,
            assistant_id=assistant_id,
            key_id=dk.key_id,
            prompt_ciphertext=encrypt_text(dk.key, prompt, thread_id),
            answer_ciphertext=encrypt_text(dk.key, answer, thread_id),
            routing=final.routing,
            usage=final.usage or TurnRecord.model_fields["usage"].get_default(call_default_factory=True),
            latency_ms=(time.perf_counter() - started) * 1000,
            user_message_id=new_id(),
            answer_message_id=new_id(),
            title_ciphertext=encrypt_text(dk.key, default_title(prompt), thread_id) if new_thread else None,
            findings=[f for f in findings if f.count > 0],
            department=actor.department,
        )
        await self.bus.publish(CHAT_TURN_COMPLETED, turn, actor=actor, id=turn.turn_id)
        self._remember(thread_id, Exchange(turn.turn_id, prompt, answer, actor.id, assistant_id))
        return turn

    async def persist(self, envs: list[Envelope[TurnRecord]]) -> None:
        """Store completed turns once each, however often they are delivered, in one transaction."""
        async with self.db.session() as session:
            fresh = await first_deliveries(session, store.inbox, [env.id for env in envs])
            turns = [env.data for env in envs if env.id in fresh]
            if turns:
                await store.save_turns(session, turns)


def _open(key: bytes | None, token: str, aad: str) -> str | None:
    """Decrypt, or None when the key was shredded or the text does not open."""
    if key is None:
        return None
    try:
        return decrypt_text(key, token, aad)
    except DecryptionError:
        return None


def _require_actor(actor: Actor | None) -> Actor:
    if actor is None:
        raise BusError("unauthenticated", "a chat turn needs an authenticated actor", 401)
    return actor
