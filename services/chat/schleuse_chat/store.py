"""The chat schema: assistants, threads, messages, feedback, prompt library and datasets.

Everything a person wrote or was answered is stored only encrypted under the owner's data key; the
exceptions are assistant configuration (admin-made) and promoted library prompts, which are redacted
by DLP and kept in clear so Postgres' German full-text search can index them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    ARRAY,
    Boolean,
    Column,
    Computed,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, insert
from sqlalchemy.ext.asyncio import AsyncSession

from schleuse_chat.domain.pagination import decode_cursor, encode_cursor
from schleuse_common.contracts.chat import TurnStored
from schleuse_common.contracts.chat_api import TurnRecord
from schleuse_common.crypto import data_keys_table
from schleuse_common.db import inbox_table
from schleuse_common.ids import new_id

metadata = MetaData(schema="chat")
data_keys = data_keys_table(metadata)
inbox = inbox_table(metadata)

assistants = Table(
    "assistants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("departments", ARRAY(String(128)), nullable=False, server_default="{}"),
    Column("model", String(200), nullable=False, server_default="default"),
    Column("allow_escalation", Boolean, nullable=False, server_default=sa.false()),
    Column("system_prompt", Text, nullable=False, server_default=""),
    Column("temperature", Float),
    Column("top_p", Float),
    Column("max_tokens", Integer),
    Column("context_window", Integer),
    Column("dlp_policy", String(100)),
    Column("external_assistant_id", String(200)),
    Column("active", Boolean, nullable=False, server_default=sa.true()),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

threads = Table(
    "threads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner_id", String(64), nullable=False, index=True),
    Column("assistant_id", String(64)),
    Column("title_key_id", String(64)),
    Column("title_ct", Text),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("thread_id", String(64), sa.ForeignKey("chat.threads.id", ondelete="CASCADE"), nullable=False),
    Column("owner_id", String(64), nullable=False, index=True),
    Column("turn_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("content_ct", Text, nullable=False),
    Column("model", String(200)),
    Column("provider", String(100)),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("latency_ms", Float),
    Column("findings", JSONB),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

feedback = Table(
    "feedback",
    metadata,
    Column("message_id", String(64), sa.ForeignKey("chat.messages.id", ondelete="CASCADE"), primary_key=True),
    Column("owner_id", String(64), nullable=False, index=True),
    Column("thumbs", String(8)),
    Column("stars", Integer),
    Column("labels", ARRAY(String(64)), nullable=False, server_default="{}"),
    Column("key_id", String(64)),
    Column("comment_ct", Text),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

prompts = Table(
    "prompts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner_id", String(64), nullable=False, index=True),
    Column("key_id", String(64), nullable=False),
    Column("title_ct", Text, nullable=False),
    Column("body_ct", Text, nullable=False),
    Column("variables", ARRAY(String(100)), nullable=False, server_default="{}"),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

library_prompts = Table(
    "library_prompts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("department", String(128), index=True),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("variables", ARRAY(String(100)), nullable=False, server_default="{}"),
    Column("status", String(16), nullable=False, server_default="candidate"),
    Column("source_prompt_id", String(64), unique=True),
    Column("submitted_by", String(64)),
    Column("reviewed_by", String(64)),
    Column("reason", Text),
    Column("usage_count", Integer, nullable=False, server_default="0"),
    Column("rating_sum", Integer, nullable=False, server_default="0"),
    Column("rating_count", Integer, nullable=False, server_default="0"),
    Column(
        "search",
        TSVECTOR,
        Computed("to_tsvector('german', coalesce(title, '') || ' ' || coalesce(body, ''))", persisted=True),
    ),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("reviewed_at", DateTime(timezone=True)),
)

library_ratings = Table(
    "library_ratings",
    metadata,
    Column("prompt_id", String(64), sa.ForeignKey("chat.library_prompts.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("stars", Integer, nullable=False),
)

dataset_items = Table(
    "dataset_items",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("source_message_id", String(64), nullable=False, unique=True),
    Column("owner_id", String(64), nullable=False, index=True),
    Column("department", String(128)),
    Column("assistant_id", String(64)),
    Column("key_id", String(64), nullable=False),
    Column("prompt_ct", Text, nullable=False),
    Column("answer_ct", Text, nullable=False),
    Column("findings", JSONB),
    Column("status", String(16), nullable=False, server_default="quarantine"),
    Column("reason", Text),
    Column("reviewed_by", String(64)),
    Column("reviewed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)


# -- turns ----------------------------------------------------------------------------------


async def save_turn(session: AsyncSession, turn: TurnStored) -> None:
    """Write a completed turn: the thread (once) and the two encrypted messages."""
    await save_turns(session, [turn])


async def save_turns(session: AsyncSession, turns: list[TurnStored]) -> None:
    """Write completed turns in bulk: each thread once (first title wins), two encrypted messages per turn."""
    records = [t if isinstance(t, TurnRecord) else TurnRecord.model_validate(t.model_dump()) for t in turns]
    thread_rows: dict[str, dict[str, Any]] = {}
    for record in records:
        row = thread_rows.setdefault(
            record.thread_id,
            {
                "id": record.thread_id,
                "owner_id": record.owner_id,
                "assistant_id": record.assistant_id,
                "title_ct": None,
                "title_key_id": None,
            },
        )
        if record.title_ciphertext and row["title_ct"] is None:
            row.update(title_ct=record.title_ciphertext, title_key_id=record.key_id)
    stmt = insert(threads)
    upsert = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={
            "updated_at": func.now(),
            "title_ct": func.coalesce(threads.c.title_ct, stmt.excluded.title_ct),
            "title_key_id": func.coalesce(threads.c.title_key_id, stmt.excluded.title_key_id),
        },
    )
    await session.execute(upsert, list(thread_rows.values()))  # executemany: compiled once, cached
    await session.execute(messages.insert(), [row for record in records for row in _message_rows(record)])


def _message_rows(record: TurnRecord) -> list[dict[str, Any]]:
    routing = record.routing
    # Every row names every column: executemany takes its columns from the first row only.
    common = {
        "thread_id": record.thread_id,
        "owner_id": record.owner_id,
        "turn_id": record.turn_id,
        "key_id": record.key_id,
        "model": None,
        "provider": None,
        "prompt_tokens": None,
        "completion_tokens": None,
        "latency_ms": None,
        "findings": None,
    }
    return [
        {
            **common,
            "id": record.user_message_id or new_id(),
            "role": "user",
            "content_ct": record.prompt_ciphertext,
            "findings": [f.model_dump() for f in record.findings] or None,
        },
        {
            **common,
            "id": record.answer_message_id or new_id(),
            "role": "assistant",
            "content_ct": record.answer_ciphertext,
            "model": routing.model if routing else None,
            "provider": routing.provider if routing else None,
            "prompt_tokens": record.usage.prompt_tokens,
            "completion_tokens": record.usage.completion_tokens,
            "latency_ms": record.latency_ms,
        },
    ]


# -- pagination -----------------------------------------------------------------------------


def keyset(
    stmt: sa.Select[Any], at: sa.ColumnElement[Any], ident: sa.ColumnElement[Any], cursor: str | None, limit: int
) -> sa.Select[Any]:
    """Newest first, after `cursor`, one row more than `limit` to tell whether a next page exists."""
    if cursor:
        when, last_id = decode_cursor(cursor)
        stmt = stmt.where(sa.tuple_(at, ident) < sa.tuple_(sa.literal(when), sa.literal(last_id)))
    return stmt.order_by(at.desc(), ident.desc()).limit(limit + 1)


def page_of(rows: Sequence[Any], limit: int, at: str, ident: str = "id") -> tuple[list[Any], str | None]:
    """Cut the extra row and make the next cursor from the last row kept."""
    kept = list(rows[:limit])
    if len(rows) > limit and kept:
        last = kept[-1]
        return kept, encode_cursor(getattr(last, at), getattr(last, ident))
    return kept, None


def not_older_than(column: sa.ColumnElement[Any], since: datetime | None) -> sa.ColumnElement[bool]:
    """Retention by query: rows older than the policy are never returned."""
    return column >= since if since is not None else sa.true()
