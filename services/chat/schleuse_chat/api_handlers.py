"""The `chat.api.*` subjects behind the gateway's `/api`: roles and ownership are checked here again.

Ownership is never revealed: another person's thread, message or prompt is simply "not found".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from schleuse_chat import store
from schleuse_chat.assistants import CHANGED_SUBJECT, AssistantCatalog, to_assistant
from schleuse_chat.domain.datasets import is_positive, openai_line, qa_line
from schleuse_chat.domain.library import average, render, variables_of
from schleuse_chat.domain.pagination import InvalidCursor, decode_offset, encode_offset
from schleuse_chat.settings import ChatSettings
from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError, Envelope, Unavailable
from schleuse_common.contracts import chat_api as api
from schleuse_common.contracts.audit import AuditEvent, audit_subject
from schleuse_common.contracts.dlp import (
    DLP_FORGET,
    DLP_SCAN,
    FindingSummary,
    ForgetRequest,
    ForgetResult,
    ScanRequest,
    ScanResult,
)
from schleuse_common.crypto import DataKeyring, DecryptionError, decrypt_text, encrypt_text
from schleuse_common.ids import new_id, utcnow

log = structlog.get_logger("schleuse.chat.api")

DATASET_KEY_OWNER = "chat:datasets"  # the service's own data key for redacted training data

Req = TypeVar("Req", bound=BaseModel)


@dataclass
class ChatApi:
    bus: Bus
    db: Any  # schleuse_common.db.Database
    keyring: DataKeyring
    settings: ChatSettings
    catalog: AssistantCatalog
    forget_thread: Callable[[str], None] = lambda _thread_id: None

    async def register(self) -> None:
        """Serve every `chat.api.*` subject and run the dataset intake consumer."""
        routes: list[tuple[str, type[BaseModel], Callable[[Actor, Any], Awaitable[BaseModel]], tuple[str, ...]]] = [
            (api.ASSISTANTS_LIST, api.PageRequest, self.assistants_list, ("user",)),
            (api.ASSISTANTS_ADMIN_LIST, api.PageRequest, self.assistants_admin_list, ("admin",)),
            (api.ASSISTANTS_GET, api.ById, self.assistants_get, ("admin",)),
            (api.ASSISTANTS_CREATE, api.AssistantFields, self.assistants_create, ("admin",)),
            (api.ASSISTANTS_UPDATE, api.AssistantUpdate, self.assistants_update, ("admin",)),
            (api.THREADS_LIST, api.PageRequest, self.threads_list, ("user",)),
            (api.THREADS_GET, api.ById, self.threads_get, ("user",)),
            (api.THREADS_RENAME, api.ThreadRename, self.threads_rename, ("user",)),
            (api.THREADS_DELETE, api.ById, self.threads_delete, ("user",)),
            (api.FEEDBACK_PUT, api.FeedbackRequest, self.feedback_put, ("user",)),
            (api.PROMPTS_LIST, api.PageRequest, self.prompts_list, ("user",)),
            (api.PROMPTS_CREATE, api.PromptFields, self.prompts_create, ("user",)),
            (api.PROMPTS_GET, api.ById, self.prompts_get, ("user",)),
            (api.PROMPTS_DELETE, api.ById, self.prompts_delete, ("user",)),
            (api.PROMPTS_SUBMIT, api.ById, self.prompts_submit, ("user",)),
            (api.LIBRARY_SEARCH, api.LibrarySearch, self.library_search, ("user",)),
            (api.LIBRARY_USE, api.LibraryUse, self.library_use, ("user",)),
            (api.LIBRARY_RATE, api.LibraryRate, self.library_rate, ("user",)),
            (api.LIBRARY_CANDIDATES, api.PageRequest, self.library_candidates, ("steward",)),
            (api.LIBRARY_REVIEW, api.ReviewDecision, self.library_review, ("steward",)),
            (api.DATASET_ITEMS, api.DatasetItemsRequest, self.dataset_items, ("steward",)),
            (api.DATASET_REVIEW, api.ReviewDecision, self.dataset_review, ("steward",)),
            (api.DATASET_EXPORT, api.DatasetExportRequest, self.dataset_export, ("steward",)),
        ]
        for subject, model, handler, roles in routes:
            await self.bus.serve(subject, model, _guarded(handler, roles), queue="chat")
        await self.bus.consume(
            stream="CHAT",
            durable="chat-datasets",
            filter_subject=api.CHAT_FEEDBACK_POSITIVE,
            data_model=api.FeedbackPositive,
            handler=self.quarantine,
        )

    # -- assistants -----------------------------------------------------------------------

    async def assistants_list(self, actor: Actor, req: api.PageRequest) -> api.Page[api.AssistantSummary]:
        """The caller's department's active assistants (all of them: a short list)."""
        items = [
            api.AssistantSummary(
                id=a.id, name=a.name, description=a.description, model=a.model, allow_escalation=a.allow_escalation
            )
            for a in await self.catalog.visible(actor)
        ]
        return api.Page[api.AssistantSummary](items=items)

    async def assistants_admin_list(self, actor: Actor, req: api.PageRequest) -> api.Page[api.Assistant]:
        a = store.assistants.c
        stmt = store.keyset(sa.select(store.assistants), a.created_at, a.id, req.cursor, req.limit)
        async with self.db.session() as session:
            rows, cursor = store.page_of((await session.execute(stmt)).all(), req.limit, "created_at")
        return api.Page[api.Assistant](items=[to_assistant(r) for r in rows], next_cursor=cursor)

    async def assistants_get(self, actor: Actor, req: api.ById) -> api.Assistant:
        async with self.db.session() as session:
            row = (await session.execute(sa.select(store.assistants).where(store.assistants.c.id == req.id))).first()
        if row is None:
            raise BusError("assistant_not_found", "no such assistant", 404)
        return to_assistant(row)

    async def assistants_create(self, actor: Actor, req: api.AssistantFields) -> api.Assistant:
        assistant_id = new_id()
        async with self.db.session() as session:
            exists = await session.execute(sa.select(store.assistants.c.id).where(store.assistants.c.name == req.name))
            if exists.first() is not None:
                raise BusError("assistant_exists", "an assistant with this name exists", 409)
            row = (
                await session.execute(
                    store.assistants.insert().values(id=assistant_id, **req.model_dump()).returning(store.assistants)
                )
            ).one()
            await self._audit(actor, "assistant_create", "assistant", assistant_id)
        await self._assistants_changed()
        return to_assistant(row)

    async def assistants_update(self, actor: Actor, req: api.AssistantUpdate) -> api.Assistant:
        changes = req.patch.model_dump(exclude_none=True)
        async with self.db.session() as session:
            stmt = (
                store.assistants.update()
                .where(store.assistants.c.id == req.id)
                .values(**changes, updated_at=sa.func.now())
                .returning(store.assistants)
            )
            row = (await session.execute(stmt)).first()
            if row is None:
                raise BusError("assistant_not_found", "no such assistant", 404)
            detail: dict[str, str | int | float | bool | None] = {"fields": ",".join(sorted(changes))}
            action = "assistant_deactivate" if changes.get("active") is False else "assistant_update"
            await self._audit(actor, action, "assistant", req.id, detail)
        await self._assistants_changed()
        return to_assistant(row)

    async def _assistants_changed(self) -> None:
        self.catalog.invalidate()
        await self.bus.nc.publish(CHANGED_SUBJECT, b"")

    # -- threads --------------------------------------------------------------------------

    async def threads_list(self, actor: Actor, req: api.PageRequest) -> api.Page[api.ThreadSummary]:
        t = store.threads.c
        base = sa.select(store.threads).where(t.owner_id == actor.id, store.not_older_than(t.updated_at, self._since()))
        stmt = store.keyset(base, t.updated_at, t.id, req.cursor, req.limit)
        async with self.db.session() as session:
            rows, cursor = store.page_of((await session.execute(stmt)).all(), req.limit, "updated_at")
            items = [await self._thread_summary(session, r) for r in rows]
        return api.Page[api.ThreadSummary](items=items, next_cursor=cursor)

    async def threads_get(self, actor: Actor, req: api.ById) -> api.ThreadView:
        m = store.messages.c
        async with self.db.session() as session:
            thread = await self._own_thread(session, actor, req.id)
            rows = (
                await session.execute(
                    sa.select(store.messages)
                    .where(m.thread_id == req.id, store.not_older_than(m.created_at, self._since()))
                    .order_by(m.created_at, m.turn_id, m.role.desc())
                )
            ).all()
            messages = [
                api.MessageView(
                    id=r.id,
                    turn_id=r.turn_id,
                    role=r.role,
                    content=await self._open(session, r.key_id, r.content_ct, req.id),
                    model=r.model,
                    provider=r.provider,
                    prompt_tokens=r.prompt_tokens,
                    completion_tokens=r.completion_tokens,
                    latency_ms=r.latency_ms,
                    findings=[FindingSummary.model_validate(f) for f in r.findings or []],
                    created_at=r.created_at,
                )
                for r in rows
            ]
            summary = await self._thread_summary(session, thread)
        return api.ThreadView(**summary.model_dump(), messages=messages)

    async def threads_rename(self, actor: Actor, req: api.ThreadRename) -> api.ThreadSummary:
        async with self.db.session() as session:
            await self._own_thread(session, actor, req.id)
            dk = await self.keyring.for_owner(session, actor.id)
            row = (
                await session.execute(
                    store.threads.update()
                    .where(store.threads.c.id == req.id, store.threads.c.owner_id == actor.id)
                    .values(title_ct=encrypt_text(dk.key, req.title, req.id), title_key_id=dk.key_id)
                    .returning(store.threads)
                )
            ).one()
            return await self._thread_summary(session, row)

    async def threads_delete(self, actor: Actor, req: api.ById) -> api.Deleted:
        async with self.db.session() as session:
            await self._own_thread(session, actor, req.id)
            await session.execute(sa.delete(store.threads).where(store.threads.c.id == req.id))
        self.forget_thread(req.id)
        try:  # the placeholder mapping of the thread holds the originals: drop it too
            await self.bus.request(DLP_FORGET, ForgetRequest(thread_id=req.id), ForgetResult, actor=actor)
        except Unavailable:
            log.warning("chat.dlp_forget_unavailable")
        return api.Deleted(id=req.id)

    async def _own_thread(self, session: AsyncSession, actor: Actor, thread_id: str) -> Any:
        t = store.threads.c
        row = (await session.execute(sa.select(store.threads).where(t.id == thread_id, t.owner_id == actor.id))).first()
        if row is None:
            raise BusError("not_found", "no such thread", 404)
        return row

    async def _thread_summary(self, session: AsyncSession, row: Any) -> api.ThreadSummary:
        title = await self._open(session, row.title_key_id, row.title_ct, row.id) if row.title_ct else None
        return api.ThreadSummary(
            id=row.id,
            assistant_id=row.assistant_id,
            title=title,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    # -- feedback -------------------------------------------------------------------------

    async def feedback_put(self, actor: Actor, req: api.FeedbackRequest) -> api.FeedbackView:
        m = store.messages.c
        async with self.db.session() as session:
            owned = await session.execute(
                sa.select(m.id).where(m.id == req.message_id, m.owner_id == actor.id, m.role == "assistant")
            )
            if owned.first() is None:
                raise BusError("not_found", "no such answer", 404)
            dk = await self.keyring.for_owner(session, actor.id)
            values: dict[str, Any] = {
                "thumbs": req.thumbs,
                "stars": req.stars,
                "labels": req.labels,
                "key_id": dk.key_id if req.comment else None,
                "comment_ct": encrypt_text(dk.key, req.comment, req.message_id) if req.comment else None,
            }
            row = (
                await session.execute(
                    insert(store.feedback)
                    .values(message_id=req.message_id, owner_id=actor.id, **values)
                    .on_conflict_do_update(index_elements=["message_id"], set_={**values, "updated_at": sa.func.now()})
                    .returning(store.feedback)
                )
            ).one()
            if is_positive(req.thumbs, req.stars):
                await self.bus.publish(
                    api.CHAT_FEEDBACK_POSITIVE,
                    api.FeedbackPositive(message_id=req.message_id, owner_id=actor.id),
                    actor=actor,
                    id=f"positive-{req.message_id}",
                )
        return api.FeedbackView(
            message_id=row.message_id,
            thumbs=row.thumbs,
            stars=row.stars,
            labels=list(row.labels),
            comment=req.comment,
            updated_at=row.updated_at,
        )

    # -- prompt library -------------------------------------------------------------------

    async def prompts_create(self, actor: Actor, req: api.PromptFields) -> api.PromptView:
        prompt_id = new_id()
        async with self.db.session() as session:
            dk = await self.keyring.for_owner(session, actor.id)
            row = (
                await session.execute(
                    store.prompts.insert()
                    .values(
                        id=prompt_id,
                        owner_id=actor.id,
                        key_id=dk.key_id,
                        title_ct=encrypt_text(dk.key, req.title, prompt_id),
                        body_ct=encrypt_text(dk.key, req.body, prompt_id),
                        variables=variables_of(req.body),
                    )
                    .returning(store.prompts)
                )
            ).one()
        return api.PromptView(
            id=prompt_id, title=req.title, body=req.body, variables=list(row.variables), created_at=row.created_at
        )

    async def prompts_list(self, actor: Actor, req: api.PageRequest) -> api.Page[api.PromptView]:
        p = store.prompts.c
        stmt = store.keyset(
            sa.select(store.prompts).where(p.owner_id == actor.id), p.created_at, p.id, req.cursor, req.limit
        )
        async with self.db.session() as session:
            rows, cursor = store.page_of((await session.execute(stmt)).all(), req.limit, "created_at")
            items = [await self._prompt_view(session, r) for r in rows]
        return api.Page[api.PromptView](items=items, next_cursor=cursor)

    async def prompts_get(self, actor: Actor, req: api.ById) -> api.PromptView:
        async with self.db.session() as session:
            return await self._prompt_view(session, await self._own_prompt(session, actor, req.id))

    async def prompts_delete(self, actor: Actor, req: api.ById) -> api.Deleted:
        async with self.db.session() as session:
            await self._own_prompt(session, actor, req.id)
            await session.execute(sa.delete(store.prompts).where(store.prompts.c.id == req.id))
        return api.Deleted(id=req.id)

    async def prompts_submit(self, actor: Actor, req: api.ById) -> api.LibraryPrompt:
        """Offer one's prompt to the department library: DLP redacts it, a steward decides."""
        async with self.db.session() as session:
            view = await self._prompt_view(session, await self._own_prompt(session, actor, req.id))
        if view.title is None or view.body is None:
            raise BusError("not_found", "no such prompt", 404)
        title, body = await self._redacted(actor, f"library:{req.id}", [view.title, view.body])
        async with self.db.session() as session:
            stmt = (
                insert(store.library_prompts)
                .values(
                    id=new_id(),
                    department=actor.department,
                    title=title,
                    body=body,
                    variables=variables_of(body),
                    source_prompt_id=req.id,
                    submitted_by=actor.id,
                )
                .on_conflict_do_nothing(index_elements=["source_prompt_id"])
                .returning(store.library_prompts)
            )
            row = (await session.execute(stmt)).first()
        if row is None:
            raise BusError("already_submitted", "this prompt was submitted before", 409)
        return _library_view(row)

    async def library_search(self, actor: Actor, req: api.LibrarySearch) -> api.Page[api.LibraryPrompt]:
        """Published prompts of the caller's department (and global ones), by German full-text rank."""
        lp = store.library_prompts.c
        visible = sa.and_(lp.status == "published", sa.or_(lp.department == actor.department, lp.department.is_(None)))
        try:
            offset = decode_offset(req.cursor)
        except InvalidCursor as e:
            raise BusError("invalid_cursor", str(e), 422) from e
        if req.query and req.query.strip():
            query = sa.func.websearch_to_tsquery(sa.literal_column("'german'::regconfig"), req.query)
            rank = sa.func.ts_rank(lp.search, query).label("rank")
            stmt = sa.select(store.library_prompts, rank).where(visible, lp.search.op("@@")(query))
            stmt = stmt.order_by(rank.desc(), lp.id.desc())
        else:
            stmt = sa.select(store.library_prompts, sa.null().label("rank")).where(visible)
            stmt = stmt.order_by(lp.usage_count.desc(), lp.id.desc())
        async with self.db.session() as session:
            rows = (await session.execute(stmt.offset(offset).limit(req.limit + 1))).all()
        cursor = encode_offset(offset + req.limit) if len(rows) > req.limit else None
        return api.Page[api.LibraryPrompt](items=[_library_view(r) for r in rows[: req.limit]], next_cursor=cursor)

    async def library_use(self, actor: Actor, req: api.LibraryUse) -> api.LibraryUsed:
        lp = store.library_prompts.c
        async with self.db.session() as session:
            row = (
                await session.execute(
                    store.library_prompts.update()
                    .where(lp.id == req.id, *_published_for(actor))
                    .values(usage_count=lp.usage_count + 1)
                    .returning(lp.body)
                )
            ).first()
        if row is None:
            raise BusError("not_found", "no such library prompt", 404)
        text, missing = render(row.body, req.values)
        return api.LibraryUsed(id=req.id, text=text, missing=missing)

    async def library_rate(self, actor: Actor, req: api.LibraryRate) -> api.LibraryPrompt:
        lp, r = store.library_prompts.c, store.library_ratings.c
        async with self.db.session() as session:
            found = await session.execute(sa.select(lp.id).where(lp.id == req.id, *_published_for(actor)))
            if found.first() is None:
                raise BusError("not_found", "no such library prompt", 404)
            await session.execute(
                insert(store.library_ratings)
                .values(prompt_id=req.id, user_id=actor.id, stars=req.stars)
                .on_conflict_do_update(index_elements=["prompt_id", "user_id"], set_={"stars": req.stars})
            )
            totals = sa.select(sa.func.coalesce(sa.func.sum(r.stars), 0), sa.func.count()).where(r.prompt_id == req.id)
            total, count = (await session.execute(totals)).one()
            row = (
                await session.execute(
                    store.library_prompts.update()
                    .where(lp.id == req.id)
                    .values(rating_sum=int(total), rating_count=int(count))
                    .returning(store.library_prompts)
                )
            ).one()
        return _library_view(row)

    async def library_candidates(self, actor: Actor, req: api.PageRequest) -> api.Page[api.LibraryPrompt]:
        lp = store.library_prompts.c
        base = sa.select(store.library_prompts).where(lp.status == "candidate", *_steward_scope(actor, lp.department))
        stmt = store.keyset(base, lp.created_at, lp.id, req.cursor, req.limit)
        async with self.db.session() as session:
            rows, cursor = store.page_of((await session.execute(stmt)).all(), req.limit, "created_at")
        return api.Page[api.LibraryPrompt](items=[_library_view(r) for r in rows], next_cursor=cursor)

    async def library_review(self, actor: Actor, req: api.ReviewDecision) -> api.LibraryPrompt:
        """A steward publishes a candidate into the department library or rejects it (audited)."""
        _need_reason(req)
        lp = store.library_prompts.c
        async with self.db.session() as session:
            row = (
                await session.execute(
                    store.library_prompts.update()
                    .where(lp.id == req.id, lp.status == "candidate", *_steward_scope(actor, lp.department))
                    .values(
                        status="published" if req.decision == "approve" else "rejected",
                        reason=req.reason,
                        reviewed_by=actor.id,
                        reviewed_at=sa.func.now(),
                    )
                    .returning(store.library_prompts)
                )
            ).first()
            if row is None:
                raise BusError("not_found", "no such candidate", 404)
            action = "library_promote" if req.decision == "approve" else "library_reject"
            await self._audit(actor, action, "library_prompt", req.id, {"department": row.department})
        return _library_view(row)

    async def _own_prompt(self, session: AsyncSession, actor: Actor, prompt_id: str) -> Any:
        p = store.prompts.c
        row = (await session.execute(sa.select(store.prompts).where(p.id == prompt_id, p.owner_id == actor.id))).first()
        if row is None:
            raise BusError("not_found", "no such prompt", 404)
        return row

    async def _prompt_view(self, session: AsyncSession, row: Any) -> api.PromptView:
        return api.PromptView(
            id=row.id,
            title=await self._open(session, row.key_id, row.title_ct, row.id),
            body=await self._open(session, row.key_id, row.body_ct, row.id),
            variables=list(row.variables),
            created_at=row.created_at,
        )

    # -- datasets -------------------------------------------------------------------------

    async def quarantine(self, env: Envelope[api.FeedbackPositive]) -> None:
        """A positively rated exchange enters the quarantine, redacted by DLP, once."""
        fact = env.data
        m, t, d = store.messages.c, store.threads.c, store.dataset_items.c
        async with self.db.session() as session:
            if (await session.execute(sa.select(d.id).where(d.source_message_id == fact.message_id))).first():
                return
            answer = (
                await session.execute(
                    sa.select(store.messages, t.assistant_id)
                    .join(store.threads, t.id == m.thread_id)
                    .where(m.id == fact.message_id, m.owner_id == fact.owner_id, m.role == "assistant")
                )
            ).first()
            if answer is None:  # deleted meanwhile
                return
            question = (
                await session.execute(sa.select(store.messages).where(m.turn_id == answer.turn_id, m.role == "user"))
            ).first()
            prompt = (
                await self._open(session, answer.key_id, question.content_ct, answer.thread_id) if question else None
            )
            reply = await self._open(session, answer.key_id, answer.content_ct, answer.thread_id)
        if prompt is None or reply is None:  # shredded
            return
        item_id = new_id()
        actor = env.actor
        try:
            red_prompt, red_answer = await self._redacted(actor, f"dataset:{item_id}", [prompt, reply])
        except BusError as e:
            if e.code == "dlp_blocked":  # what must not leave the house never becomes training data
                return
            raise
        async with self.db.session() as session:
            dk = await self.keyring.for_owner(session, DATASET_KEY_OWNER)
            await session.execute(
                insert(store.dataset_items)
                .values(
                    id=item_id,
                    source_message_id=fact.message_id,
                    owner_id=fact.owner_id,
                    department=actor.department if actor else None,
                    assistant_id=answer.assistant_id,
                    key_id=dk.key_id,
                    prompt_ct=encrypt_text(dk.key, red_prompt, item_id),
                    answer_ct=encrypt_text(dk.key, red_answer, item_id),
                    findings=answer.findings or (question.findings if question else None),
                )
                .on_conflict_do_nothing(index_elements=["source_message_id"])
            )

    async def dataset_items(self, actor: Actor, req: api.DatasetItemsRequest) -> api.Page[api.DatasetItem]:
        d = store.dataset_items.c
        base = sa.select(store.dataset_items).where(d.status == req.status, *_steward_scope(actor, d.department))
        stmt = store.keyset(base, d.created_at, d.id, req.cursor, req.limit)
        async with self.db.session() as session:
            rows, cursor = store.page_of((await session.execute(stmt)).all(), req.limit, "created_at")
            items = [await self._dataset_view(session, r) for r in rows]
        return api.Page[api.DatasetItem](items=items, next_cursor=cursor)

    async def dataset_review(self, actor: Actor, req: api.ReviewDecision) -> api.DatasetItem:
        """A steward approves or rejects a quarantined exchange (audited)."""
        _need_reason(req)
        d = store.dataset_items.c
        async with self.db.session() as session:
            row = (
                await session.execute(
                    store.dataset_items.update()
                    .where(d.id == req.id, d.status == "quarantine", *_steward_scope(actor, d.department))
                    .values(
                        status="approved" if req.decision == "approve" else "rejected",
                        reason=req.reason,
                        reviewed_by=actor.id,
                        reviewed_at=sa.func.now(),
                    )
                    .returning(store.dataset_items)
                )
            ).first()
            if row is None:
                raise BusError("not_found", "no such item in quarantine", 404)
            action = "dataset_approve" if req.decision == "approve" else "dataset_reject"
            await self._audit(actor, action, "dataset_item", req.id, {"department": row.department})
            return await self._dataset_view(session, row)

    async def dataset_export(self, actor: Actor, req: api.DatasetExportRequest) -> api.DatasetExport:
        """Approved items as JSONL: OpenAI fine-tuning chat format or plain question/answer (audited)."""
        d = store.dataset_items.c
        where = [d.status == "approved", *_steward_scope(actor, d.department)]
        if req.assistant_id:
            where.append(d.assistant_id == req.assistant_id)
        stmt = (
            sa.select(store.dataset_items).where(*where).order_by(d.created_at, d.id).limit(self.settings.export_limit)
        )
        prompts = {a.id: a.system_prompt for a in await self.catalog.all()}
        lines: list[str] = []
        async with self.db.session() as session:
            for row in (await session.execute(stmt)).all():
                item = await self._dataset_view(session, row)
                if item.prompt is None or item.answer is None:
                    continue
                if req.format == "openai":
                    lines.append(openai_line(prompts.get(row.assistant_id or ""), item.prompt, item.answer))
                else:
                    lines.append(qa_line(item.id, item.prompt, item.answer))
            detail: dict[str, str | int | float | bool | None] = {"format": req.format, "count": len(lines)}
            await self._audit(actor, "dataset_export", "dataset", req.assistant_id, detail)
        return api.DatasetExport(format=req.format, count=len(lines), jsonl="".join(f"{line}\n" for line in lines))

    async def _dataset_view(self, session: AsyncSession, row: Any) -> api.DatasetItem:
        return api.DatasetItem(
            id=row.id,
            department=row.department,
            assistant_id=row.assistant_id,
            prompt=await self._open(session, row.key_id, row.prompt_ct, row.id),
            answer=await self._open(session, row.key_id, row.answer_ct, row.id),
            findings=[FindingSummary.model_validate(f) for f in row.findings or []],
            status=row.status,
            reason=row.reason,
            reviewed_at=row.reviewed_at,
            created_at=row.created_at,
        )

    # -- shared ---------------------------------------------------------------------------

    async def _redacted(self, actor: Actor | None, scope: str, texts: list[str]) -> list[str]:
        """Texts as DLP redacts them (placeholders consistent across `texts`); the scope's mapping is dropped after."""
        out: list[str] = []
        try:
            for text in texts:
                result = await self.bus.request(
                    DLP_SCAN,
                    ScanRequest(text=text, thread_id=scope, department=actor.department if actor else None),
                    ScanResult,
                    actor=actor,
                    timeout=self.settings.dlp_timeout_seconds,
                )
                if result.blocked:
                    raise BusError("dlp_blocked", "the text holds data that must not be shared", 422)
                out.append(result.text)
            await self.bus.request(DLP_FORGET, ForgetRequest(thread_id=scope), ForgetResult, actor=actor)
        except Unavailable as e:
            raise BusError("dlp_unavailable", "the DLP check is unavailable; nothing was shared", 503) from e
        return out

    async def _audit(
        self,
        actor: Actor,
        action: str,
        target_type: str,
        target_id: str | None,
        detail: dict[str, str | int | float | bool | None] | None = None,
    ) -> None:
        """Publish the audit fact inside the caller's transaction: no acknowledged audit, no change."""
        event = AuditEvent(action=action, target_type=target_type, target_id=target_id, detail=detail or {})
        await self.bus.publish(audit_subject("chat", action), event, actor=actor)

    async def _open(self, session: AsyncSession, key_id: str | None, token: str | None, aad: str) -> str | None:
        if not key_id or not token:
            return None
        key = await self.keyring.by_id(session, key_id)
        if key is None:
            return None
        try:
            return decrypt_text(key, token, aad)
        except DecryptionError:
            return None

    def _since(self) -> datetime | None:
        days = self.settings.retention_days
        return utcnow() - timedelta(days=days) if days else None


def _guarded(
    handler: Callable[[Actor, Req], Awaitable[BaseModel]], roles: tuple[str, ...]
) -> Callable[[Envelope[Req]], Awaitable[BaseModel]]:
    """Check the signed actor and its roles again before the handler runs."""

    async def serve(env: Envelope[Req]) -> BaseModel:
        if env.actor is None:
            raise BusError("unauthenticated", "an authenticated actor is required", 401)
        if not env.actor.has_role(*roles):
            raise BusError("forbidden", f"requires one of the roles: {', '.join(roles)}", 403)
        try:
            return await handler(env.actor, env.data)
        except InvalidCursor as e:
            raise BusError("invalid_cursor", str(e), 422) from e

    return serve


def _published_for(actor: Actor) -> list[sa.ColumnElement[bool]]:
    lp = store.library_prompts.c
    return [lp.status == "published", sa.or_(lp.department == actor.department, lp.department.is_(None))]


def _steward_scope(actor: Actor, column: sa.ColumnElement[Any]) -> list[sa.ColumnElement[bool]]:
    """Stewards with a department review that department's items; without one, all."""
    return [column == actor.department] if actor.department else []


def _need_reason(req: api.ReviewDecision) -> None:
    if req.decision == "reject" and not (req.reason and req.reason.strip()):
        raise BusError("reason_required", "a rejection needs a reason", 422)


def _library_view(row: Any) -> api.LibraryPrompt:
    return api.LibraryPrompt(
        id=row.id,
        department=row.department,
        title=row.title,
        body=row.body,
        variables=list(row.variables),
        status=row.status,
        usage_count=row.usage_count,
        rating_avg=average(row.rating_sum, row.rating_count),
        rating_count=row.rating_count,
        rank=getattr(row, "rank", None),
        created_at=row.created_at,
    )
