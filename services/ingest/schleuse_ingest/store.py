"""The ingest schema: batch upserts of calls with their file offsets, call queries, commands, rights, purge."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from schleuse_common.crypto import DataKey, DecryptionError, decrypt, encrypt
from schleuse_ingest.domain.calls import CallNotFound, CallState, Change, Status
from schleuse_ingest.domain.events import NormalisedCall, search_key
from schleuse_ingest.domain.query import (
    PRIORITY_RANK,
    Filters,
    Sort,
    decode_cursor,
    encode_cursor,
    search_terms,
    search_words,
)
from schleuse_ingest.domain.retention import topic_group
from schleuse_ingest.domain.tailing import FileCursor
from schleuse_ingest.keys import CallKeyring, caller_owner, dead_letter_owner, nonces, seal

TOTAL_CAP = 1000  # counting further costs more than a list; the UI shows "1.000+"
SYSTEM_ACTOR = "system:ingest"


@dataclass(frozen=True, slots=True)
class Rejected:
    """An event that failed validation, kept as a dead letter with its raw bytes (encrypted)."""

    raw: bytes
    reason: str
    source: str
    origin: str
    position: int | None


@dataclass(slots=True)
class BatchOutcome:
    """What one committed batch changed, for `calls.changed.*`."""

    created: list[tuple[int, int]] = field(default_factory=list)
    updated: list[tuple[int, int]] = field(default_factory=list)
    dead_letters: int = 0


@dataclass(frozen=True, slots=True)
class CallRow:
    """A call as read from the table (date of birth still encrypted)."""

    id: int
    event_id: str
    received_at: datetime
    caller_number: str
    caller_name: str | None
    dob_ct: bytes | None
    topic: str
    priority: str
    source: str
    status: str
    assignee: str | None
    version: int
    updated_at: datetime
    key_id: str


_CALL_COLUMNS = (
    "id, event_id, received_at, caller_number, caller_name, dob_ct, topic, priority, source, status, "
    "assignee, version, updated_at, key_id"
)


def name_words(name: str | None) -> str:
    """A caller name as indexed: its folded words, space separated (`Müller-Weiß` -> `mueller weiss`)."""
    return _name_words(name) if name else ""


@lru_cache(maxsize=65536)
def _name_words(name: str) -> str:  # names are at most MAX_NAME characters; callers call again
    return " ".join(search_words(search_key(name)))


def _aad(kind: str, ref: str) -> bytes:
    return f"{kind}:{ref}".encode()


# -- ingest -----------------------------------------------------------------------------------


async def write_batch(
    session: AsyncSession,
    keyring: CallKeyring,
    *,
    calls: Sequence[NormalisedCall] | StagedCalls,
    rejected: Sequence[Rejected],
    cursor: FileCursor | None = None,
) -> BatchOutcome:
    """Upsert calls, store dead letters and advance the file cursor in the caller's transaction."""
    outcome = BatchOutcome()
    staged = calls if isinstance(calls, StagedCalls) else stage_calls(keyring, calls)
    if staged.calls:
        await _upsert_calls(session, keyring, staged, outcome)
    if rejected:
        outcome.dead_letters = await _insert_dead_letters(session, keyring, rejected)
    if cursor is not None:
        await save_cursor(session, cursor)
    return outcome


@dataclass(slots=True)
class StagedCalls:
    """A batch's rows for `calls`, built (encrypted) off the event loop; None where the key was not cached."""

    calls: list[NormalisedCall]
    owners: list[str]
    keys: list[DataKey | None]
    rows: list[tuple[Any, ...] | None]
    received: int  # valid events before the dedupe within the batch


def stage_calls(keyring: CallKeyring, calls: Sequence[NormalisedCall]) -> StagedCalls:
    """CPU work of an upsert (may run in a thread): dedupe, search words, hashes, encryption under cached keys."""
    latest: dict[str, NormalisedCall] = {}
    for call in calls:  # the last event with an id wins, as if the batch ran line by line
        latest.pop(call.event_id, None)
        latest[call.event_id] = call
    unique = list(latest.values())
    owners = [caller_owner(c.caller_number) for c in unique]
    keys = [keyring.cached(owner) for owner in owners]
    fresh = iter(nonces(2 * len(unique)))
    rows = [_row(keyring, c, dk, next(fresh), next(fresh)) if dk else None for c, dk in zip(unique, keys, strict=True)]
    return StagedCalls(unique, owners, keys, rows, len(calls))


def _row(keyring: CallKeyring, c: NormalisedCall, dk: DataKey, dob_nonce: bytes, raw_nonce: bytes) -> tuple[Any, ...]:
    aead = keyring.aead(dk)
    event_id = c.event_id
    return (
        event_id,
        c.received_at,
        c.caller_number,
        c.caller_name,
        name_words(c.caller_name),
        seal(aead, dob_nonce, c.date_of_birth.isoformat().encode(), _aad("dob", event_id)) if c.date_of_birth else None,
        c.topic,
        search_key(c.topic),
        c.priority.value,
        PRIORITY_RANK[c.priority],
        c.source,
        c.schema_version,
        dk.key_id,
        seal(aead, raw_nonce, orjson.dumps(c.payload), _aad("raw", event_id)),
        c.content_hash(),
    )


_STAGE_COLUMNS = (
    ("event_id", "text"),
    ("received_at", "timestamptz"),
    ("caller_number", "text"),
    ("caller_name", "text"),
    ("name_words", "text"),
    ("dob_ct", "bytea"),
    ("topic", "text"),
    ("topic_key", "text"),
    ("priority", "text"),
    ("priority_rank", "int2"),
    ("source", "text"),
    ("schema_version", "int2"),
    ("key_id", "text"),
    ("raw_ct", "bytea"),
    ("content_hash", "text"),
)
# A per-connection staging table: a batch arrives by binary COPY (no per-value Python dumping), then one
# INSERT ... SELECT ... ON CONFLICT upserts it. Rows vanish at commit; a rollback discards them as well.
_CREATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS calls_stage ("
    + ", ".join(f"{name} {'smallint' if kind == 'int2' else kind}" for name, kind in _STAGE_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
_COPY_STAGE = f"COPY calls_stage ({', '.join(n for n, _ in _STAGE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_UPSERT_FROM_STAGE = """
    INSERT INTO calls (event_id, received_at, caller_number, caller_name, dob_ct, topic, search_tsv,
                       priority, priority_rank, source, schema_version, key_id, raw_ct, content_hash)
    SELECT t.event_id, t.received_at, t.caller_number, t.caller_name, t.dob_ct, t.topic,
           to_tsvector('simple', t.name_words) || to_tsvector('german', t.topic_key),
           t.priority, t.priority_rank, t.source, t.schema_version, t.key_id, t.raw_ct, t.content_hash
    FROM calls_stage t
    ON CONFLICT (event_id) DO UPDATE SET
        received_at = EXCLUDED.received_at, caller_number = EXCLUDED.caller_number,
        caller_name = EXCLUDED.caller_name, dob_ct = EXCLUDED.dob_ct,
        topic = EXCLUDED.topic, search_tsv = EXCLUDED.search_tsv,
        priority = EXCLUDED.priority, priority_rank = EXCLUDED.priority_rank, source = EXCLUDED.source,
        schema_version = EXCLUDED.schema_version, key_id = EXCLUDED.key_id, raw_ct = EXCLUDED.raw_ct,
        content_hash = EXCLUDED.content_hash, version = calls.version + 1, updated_at = now()
    WHERE calls.content_hash IS DISTINCT FROM EXCLUDED.content_hash
    RETURNING id, version, (xmax = 0) AS inserted
"""


async def _upsert_calls(
    session: AsyncSession, keyring: CallKeyring, staged: StagedCalls, outcome: BatchOutcome
) -> None:
    # Rows staged under a key that is no longer the cached one (shredded, or created by a rolled-back
    # transaction) and rows of new callers are (re)built here with the key from the database.
    stale = {
        owner
        for owner, dk in zip(staged.owners, staged.keys, strict=True)
        if dk is None or keyring.cached(owner) is not dk
    }
    rows = staged.rows
    if stale:
        keys = await keyring.for_owners(session, stale)
        fresh = iter(nonces(2 * len(staged.calls)))
        rows = [
            _row(keyring, c, keys[owner], next(fresh), next(fresh)) if owner in stale else row
            for c, owner, row in zip(staged.calls, staged.owners, rows, strict=True)
        ]
    conn = await session.connection()
    await conn.exec_driver_sql(_CREATE_STAGE)
    raw = await conn.get_raw_connection()
    pg: Any = raw.driver_connection
    async with pg.cursor() as cur:
        async with cur.copy(_COPY_STAGE) as copy:
            copy.set_types([kind for _, kind in _STAGE_COLUMNS])
            for row in rows:
                await copy.write_row(row)
        await cur.execute(_UPSERT_FROM_STAGE)
        returned = await cur.fetchall()
    edited: list[int] = []
    for call_id, version, inserted in returned:
        if inserted:
            outcome.created.append((call_id, version))
        else:
            outcome.updated.append((call_id, version))
            edited.append(call_id)
    if edited:
        await _audit_many(session, edited, "edit", SYSTEM_ACTOR, [], {"source_update": True})


async def _insert_dead_letters(session: AsyncSession, keyring: CallKeyring, rejected: Sequence[Rejected]) -> int:
    day = datetime.now(UTC).date().isoformat()
    owner = dead_letter_owner(day)
    dk = (await keyring.for_owners(session, {owner}))[owner]
    params = {
        "source": [r.source for r in rejected],
        "origin": [r.origin for r in rejected],
        "position": [r.position for r in rejected],
        "reason": [r.reason for r in rejected],
        "key_id": [dk.key_id] * len(rejected),
        "raw_ct": [encrypt(dk.key, r.raw, _aad("dl", f"{r.origin}:{r.position}")) for r in rejected],
        "line_hash": [hashlib.sha256(r.raw).hexdigest() for r in rejected],
    }
    result = await session.execute(
        sa.text(
            """
            INSERT INTO dead_letters (source, origin, position, reason, key_id, raw_ct, line_hash)
            SELECT * FROM unnest(CAST(:source AS text[]), CAST(:origin AS text[]), CAST(:position AS bigint[]),
                                 CAST(:reason AS text[]), CAST(:key_id AS text[]), CAST(:raw_ct AS bytea[]),
                                 CAST(:line_hash AS text[]))
            ON CONFLICT (origin, position, line_hash) DO NOTHING
            """
        ),
        params,
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def load_cursor(session: AsyncSession, name: str) -> FileCursor | None:
    """The remembered read position of a file."""
    row = (
        await session.execute(
            sa.text(
                "SELECT file_name, inode, byte_offset, fingerprint, fingerprint_len FROM file_offsets "
                "WHERE file_name = :n"
            ),
            {"n": name},
        )
    ).first()
    return FileCursor(row[0], row[1], row[2], row[3], row[4]) if row else None


async def save_cursor(session: AsyncSession, cursor: FileCursor) -> None:
    """Remember how far a file was read (same transaction as the rows it produced)."""
    await session.execute(
        sa.text(
            """
            INSERT INTO file_offsets (file_name, inode, byte_offset, fingerprint, fingerprint_len, updated_at)
            VALUES (:n, :i, :o, :f, :fl, now())
            ON CONFLICT (file_name) DO UPDATE SET inode = EXCLUDED.inode, byte_offset = EXCLUDED.byte_offset,
                fingerprint = EXCLUDED.fingerprint, fingerprint_len = EXCLUDED.fingerprint_len, updated_at = now()
            """
        ),
        {
            "n": cursor.name,
            "i": cursor.inode,
            "o": cursor.offset,
            "f": cursor.fingerprint,
            "fl": cursor.fingerprint_len,
        },
    )


# -- queries ----------------------------------------------------------------------------------


def _where(filters: Filters) -> tuple[list[str], dict[str, Any], str | None]:
    """SQL conditions and parameters of the filters; the text search condition is returned apart."""
    conds = ["received_at >= :since"]
    params: dict[str, Any] = {"since": filters.since}
    if filters.until is not None:
        conds.append("received_at < :until")
        params["until"] = filters.until
    if filters.statuses:
        conds.append("status = ANY(:statuses)")
        params["statuses"] = [s.value for s in filters.statuses]
    if filters.assignee is not None:
        conds.append("assignee = :assignee")
        params["assignee"] = filters.assignee
    if filters.priorities:
        conds.append("priority_rank = ANY(:priority_ranks)")  # the indexed column
        params["priority_ranks"] = [PRIORITY_RANK[p] for p in filters.priorities]
    if filters.number_prefix:
        conds.append("caller_number LIKE :number_like")
        params["number_like"] = _like_escape(filters.number_prefix) + "%"
    text: str | None = None
    if filters.text:
        # Every typed word is a prefix of a name word (`simple`) or of a topic word (German stem).
        terms = search_terms(search_key(filters.text))
        parts = []
        for i, term in enumerate(terms):
            parts.append(f"(to_tsquery('simple', :w{i}) || to_tsquery('german', :w{i}))")
            params[f"w{i}"] = term
        text = f"search_tsv @@ ({' && '.join(parts)})" if parts else "false"
    if filters.ids:
        conds.append("id = ANY(:ids)")
        params["ids"] = list(filters.ids)
    if filters.updated_since is not None:
        conds.append("updated_at >= :updated_since")
        params["updated_since"] = filters.updated_since
    return conds, params, text


_ORDER = {
    Sort.NEWEST: ("received_at DESC, id DESC", "(received_at, id) < (:c0, :c1)"),
    Sort.OLDEST: ("received_at ASC, id ASC", "(received_at, id) > (:c0, :c1)"),
    Sort.PRIORITY: (
        "priority_rank DESC, received_at DESC, id DESC",
        "(priority_rank, received_at, id) < (:c0, :c1, :c2)",
    ),
}


# Text search. A word in many calls fills a page from the first rows in sort order (walk the order index,
# stop early); a rare word is found through the GIN index (few matches to sort). A bounded walk decides
# which case applies; when it does not fill the page, the index query returns every match, so results and
# totals are the same either way, only the cost differs.
PAGE_WINDOW = 3000
MAX_WINDOW = 12000
COUNT_WINDOW = 25000


async def list_calls(
    session: AsyncSession, filters: Filters, *, sort: Sort, cursor: str | None, limit: int, with_total: bool
) -> tuple[list[CallRow], str | None, int | None, bool]:
    """One page of calls, the cursor of the next page, and the total (exact up to TOTAL_CAP)."""
    conds, params, text = _where(filters)
    order, after = _ORDER[sort]
    page_conds = list(conds)
    if cursor:
        key = decode_cursor(cursor, sort)
        if sort == Sort.PRIORITY:
            params.update(c0=int(str(key[0])), c1=datetime.fromisoformat(str(key[1])), c2=int(str(key[2])))
        else:
            params.update(c0=datetime.fromisoformat(str(key[0])), c1=int(str(key[1])))
        page_conds.append(after)
    columns = f"{_CALL_COLUMNS}, priority_rank"
    page_where = " AND ".join(page_conds)
    page_params = {**params, "limit": limit + 1}
    total: int | None = None
    count_window = False
    if text is None:
        sql = f"SELECT {columns} FROM calls WHERE {page_where} ORDER BY {order} LIMIT :limit"  # noqa: S608
        rows = list((await session.execute(sa.text(sql), page_params)).all())
    else:
        # How many calls a word matches decides the plan; a cached generic plan (psycopg prepares repeated
        # statements) would not know the words and can be a hundred times slower.
        await session.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
        rows, walked = await _search_window(session, columns, page_where, text, order, page_params, PAGE_WINDOW)
        if limit >= len(rows) >= max(1, 2 * (limit + 1) * PAGE_WINDOW // MAX_WINDOW):
            # Not quite a page yet, but the hit rate says a walk of twice the projection (at most MAX_WINDOW)
            # fills it; rarer words go to the index at once.
            window = 2 * (limit + 1) * PAGE_WINDOW // len(rows)
            rows, walked = await _search_window(session, columns, page_where, text, order, page_params, window)
        if len(rows) > limit:
            # Common word: COUNT_WINDOW rows will likely hold more than TOTAL_CAP matches.
            count_window = walked * (TOTAL_CAP + 1) <= COUNT_WINDOW * (limit + 1)
        else:
            rows, matches = await _search_index(session, columns, page_where, text, order, page_params)
            if not cursor:
                total = matches
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        key_values: tuple[object, ...] = (
            (last.priority_rank, last.received_at, last.id) if sort == Sort.PRIORITY else (last.received_at, last.id)
        )
        next_cursor = encode_cursor(sort, key_values)
    exact = True
    if with_total:
        if total is None:
            total = await _count(session, conds, text, params, window=count_window)
        if total > TOTAL_CAP:
            total, exact = TOTAL_CAP, False
    return [_call_row(r) for r in rows], next_cursor, total, exact


async def _search_window(
    session: AsyncSession, columns: str, where: str, text: str, order: str, params: dict[str, Any], window: int
) -> tuple[list[Any], int]:
    """Matches among the first `window` rows in sort order, and how many rows were walked to find them."""
    sql = (
        f"SELECT * FROM (SELECT {columns}, ({text}) AS hit, "  # noqa: S608
        f"row_number() OVER (ORDER BY {order}) AS walked FROM calls WHERE {where} "
        f"ORDER BY {order} LIMIT :window) w WHERE hit LIMIT :limit"
    )
    rows = list((await session.execute(sa.text(sql), {**params, "window": window})).all())
    return rows, (rows[-1].walked if rows else window)


async def _search_index(
    session: AsyncSession, columns: str, where: str, text: str, order: str, params: dict[str, Any]
) -> tuple[list[Any], int]:
    """A page of a rarer word: every match from the index (OFFSET 0 keeps the planner from walking the sort
    order), sorted; also the number of matches."""
    sql = (
        f"SELECT *, count(*) OVER () AS matches FROM (SELECT {columns} FROM calls "  # noqa: S608
        f"WHERE {where} AND {text} OFFSET 0) m ORDER BY {order} LIMIT :limit"
    )
    rows = list((await session.execute(sa.text(sql), params)).all())
    return rows, (rows[0].matches if rows else 0)


async def _count(
    session: AsyncSession, conds: list[str], text: str | None, params: dict[str, Any], *, window: bool
) -> int:
    """Matching calls, counted up to TOTAL_CAP + 1."""
    where = " AND ".join(conds)
    cap = {**params, "cap": TOTAL_CAP + 1}
    if text is not None and window:
        # Any COUNT_WINDOW rows holding more than TOTAL_CAP matches decide "more than TOTAL_CAP".
        window_sql = (
            f"SELECT count(*) FROM (SELECT 1 FROM (SELECT search_tsv FROM calls WHERE {where} "  # noqa: S608
            f"LIMIT :window) w WHERE {text} LIMIT :cap) t"
        )
        found = int((await session.execute(sa.text(window_sql), {**cap, "window": COUNT_WINDOW})).scalar_one())
        if found > TOTAL_CAP:
            return found
    if text is not None:
        where = f"{where} AND {text}"
    count_sql = f"SELECT count(*) FROM (SELECT 1 FROM calls WHERE {where} LIMIT :cap) t"  # noqa: S608
    return int((await session.execute(sa.text(count_sql), cap)).scalar_one())


async def get_call(session: AsyncSession, call_id: int, since: datetime, *, for_update: bool = False) -> CallRow:
    """One call within the retention window; raises CallNotFound otherwise."""
    lock = " FOR UPDATE" if for_update else ""
    row = (
        await session.execute(
            sa.text(f"SELECT {_CALL_COLUMNS} FROM calls WHERE id = :id AND received_at >= :since{lock}"),  # noqa: S608
            {"id": call_id, "since": since},
        )
    ).first()
    if row is None:
        raise CallNotFound(f"call {call_id}")
    return _call_row(row)


async def calls_of_number(session: AsyncSession, caller_number: str, since: datetime) -> list[CallRow]:
    """Every call of one caller within the retention window, oldest first."""
    rows = (
        await session.execute(
            sa.text(
                f"SELECT {_CALL_COLUMNS} FROM calls WHERE caller_number = :n AND received_at >= :since "  # noqa: S608
                "ORDER BY received_at, id"
            ),
            {"n": caller_number, "since": since},
        )
    ).all()
    return [_call_row(r) for r in rows]


def _call_row(r: Any) -> CallRow:
    return CallRow(
        r.id,
        r.event_id,
        r.received_at,
        r.caller_number,
        r.caller_name,
        r.dob_ct,
        r.topic,
        r.priority,
        r.source,
        r.status,
        r.assignee,
        r.version,
        r.updated_at,
        r.key_id,
    )


async def birth_dates(session: AsyncSession, keyring: CallKeyring, rows: Sequence[CallRow]) -> dict[int, date | None]:
    """Decrypted dates of birth by call id (None when absent or the key was shredded)."""
    keys = await keyring.keys_by_id(session, {r.key_id for r in rows if r.dob_ct})
    result: dict[int, date | None] = {}
    for r in rows:
        key = keys.get(r.key_id)
        if r.dob_ct is None or key is None:
            result[r.id] = None
            continue
        try:
            result[r.id] = date.fromisoformat(decrypt(key, r.dob_ct, _aad("dob", r.event_id)).decode())
        except DecryptionError:
            result[r.id] = None
    return result


async def raw_payload(session: AsyncSession, keyring: CallKeyring, call_id: int) -> dict[str, Any] | None:
    """The decrypted raw event of a call, for export."""
    row = (
        await session.execute(sa.text("SELECT event_id, key_id, raw_ct FROM calls WHERE id = :id"), {"id": call_id})
    ).first()
    if row is None:
        return None
    key = (await keyring.keys_by_id(session, {row.key_id})).get(row.key_id)
    if key is None:
        return None
    value = orjson.loads(decrypt(key, row.raw_ct, _aad("raw", row.event_id)))
    return value if isinstance(value, dict) else None


async def history(session: AsyncSession, call_id: int) -> list[dict[str, Any]]:
    """Status history of a call, oldest first, starting with its arrival as NEW (not stored per row)."""
    rows = await session.execute(
        sa.text(
            "SELECT NULL AS from_status, 'NEW' AS to_status, :actor AS actor_id, created_at AS at, 0 AS id "
            "FROM calls WHERE id = :id UNION ALL "
            "SELECT from_status, to_status, actor_id, at, id FROM call_status WHERE call_id = :id ORDER BY at, id"
        ),
        {"id": call_id, "actor": SYSTEM_ACTOR},
    )
    return [{k: v for k, v in r._mapping.items() if k != "id"} for r in rows]


async def notes(session: AsyncSession, keyring: CallKeyring, call_id: int) -> list[dict[str, Any]]:
    """Decrypted notes of a call, oldest first."""
    rows = (
        await session.execute(
            sa.text(
                "SELECT id, author_id, key_id, body_ct, created_at FROM call_notes WHERE call_id = :id "
                "ORDER BY created_at, id"
            ),
            {"id": call_id},
        )
    ).all()
    keys = await keyring.keys_by_id(session, {r.key_id for r in rows})
    out = []
    for r in rows:
        key = keys.get(r.key_id)
        body = decrypt(key, r.body_ct, _aad("note", str(call_id))).decode() if key else "[gelöscht]"
        out.append({"id": r.id, "author_id": r.author_id, "body": body, "created_at": r.created_at})
    return out


async def audit_entries(session: AsyncSession, call_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """The latest audit entries of a call, oldest first."""
    rows = await session.execute(
        sa.text(
            "SELECT * FROM (SELECT id, action, actor_id, diff, at FROM actions_audit WHERE call_id = :id "
            "ORDER BY at DESC, id DESC LIMIT :limit) t ORDER BY at, id"
        ),
        {"id": call_id, "limit": limit},
    )
    return [dict(r._mapping) for r in rows]


# -- commands ---------------------------------------------------------------------------------


def state_of(row: CallRow) -> CallState:
    """The domain state of a stored call."""
    return CallState(row.id, Status(row.status), row.assignee, row.version)


async def apply_change(
    session: AsyncSession, change: Change, *, action: str, actor_id: str, actor_roles: list[str]
) -> None:
    """Persist a domain Change: new state, status history and an audit entry."""
    if not change.changed:
        return
    s = change.state
    await session.execute(
        sa.text(
            "UPDATE calls SET status = :status, assignee = :assignee, version = :version, updated_at = now(), "
            "done_at = CASE WHEN :status = 'DONE' THEN coalesce(done_at, now()) ELSE NULL END WHERE id = :id"
        ),
        {"status": s.status.value, "assignee": s.assignee, "version": s.version, "id": s.id},
    )
    status_diff = change.diff.get("status")
    if status_diff:
        await session.execute(
            sa.text("INSERT INTO call_status (call_id, from_status, to_status, actor_id) VALUES (:id, :f, :t, :a)"),
            {"id": s.id, "f": status_diff["from"], "t": status_diff["to"], "a": actor_id},
        )
    await _audit_many(session, [s.id], action, actor_id, actor_roles, change.diff)


async def add_note(
    session: AsyncSession,
    keyring: CallKeyring,
    row: CallRow,
    body: str,
    *,
    actor_id: str,
    actor_roles: list[str],
) -> int:
    """Store an encrypted note under the caller's key; bumps the call's version."""
    owner = caller_owner(row.caller_number)
    dk = (await keyring.for_owners(session, {owner}))[owner]
    note_id = (
        await session.execute(
            sa.text(
                "INSERT INTO call_notes (call_id, author_id, key_id, body_ct) VALUES (:c, :a, :k, :b) RETURNING id"
            ),
            {
                "c": row.id,
                "a": actor_id,
                "k": dk.key_id,
                "b": encrypt(dk.key, body.encode(), _aad("note", str(row.id))),
            },
        )
    ).scalar_one()
    await session.execute(
        sa.text("UPDATE calls SET version = version + 1, updated_at = now() WHERE id = :id"), {"id": row.id}
    )
    await _audit_many(session, [row.id], "note", actor_id, actor_roles, {"note_id": note_id})
    return int(note_id)


async def audit_views(session: AsyncSession, call_ids: Sequence[int], actor_id: str, actor_roles: list[str]) -> None:
    """Record that an actor saw these calls' number and date of birth unmasked."""
    if call_ids:
        await _audit_many(session, list(call_ids), "view_pii", actor_id, actor_roles, {})


async def _audit_many(
    session: AsyncSession,
    call_ids: Sequence[int | None],
    action: str,
    actor_id: str,
    roles: list[str],
    diff: dict[str, Any],
) -> None:
    await session.execute(
        sa.text(
            "INSERT INTO actions_audit (call_id, action, actor_id, actor_roles, diff) "
            "SELECT unnest(CAST(:ids AS bigint[])), :action, :actor, :roles, CAST(:diff AS jsonb)"
        ),
        {
            "ids": call_ids,
            "action": action,
            "actor": actor_id,
            "roles": roles,
            "diff": orjson.dumps(diff).decode(),
        },
    )


async def audit_rights(
    session: AsyncSession,
    call_id: int | None,
    action: str,
    actor_id: str,
    roles: list[str],
    diff: dict[str, Any],
) -> None:
    """A receipt of an export or a deletion (ids and counts only)."""
    await _audit_many(session, [call_id], action, actor_id, roles, diff)


async def delete_calls(session: AsyncSession, call_ids: Sequence[int]) -> int:
    """Remove calls with their history, notes and audit (receipts of rights requests stay)."""
    if not call_ids:
        return 0
    ids = list(call_ids)
    await session.execute(
        sa.text("DELETE FROM actions_audit WHERE call_id = ANY(:ids) AND action NOT IN ('export', 'delete')"),
        {"ids": ids},
    )
    result = await session.execute(sa.text("DELETE FROM calls WHERE id = ANY(:ids)"), {"ids": ids})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def shred_unused_keys(session: AsyncSession, keyring: CallKeyring, owners: Sequence[str]) -> int:
    """Shred the keys of these owners that no remaining call, note or dead letter uses."""
    if not owners:
        return 0
    rows = (
        await session.execute(
            sa.text(
                "DELETE FROM data_keys k WHERE k.owner_id = ANY(:owners) "
                "AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.key_id = k.key_id) "
                "AND NOT EXISTS (SELECT 1 FROM call_notes n WHERE n.key_id = k.key_id) "
                "AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.key_id = k.key_id) RETURNING owner_id"
            ),
            {"owners": list(owners)},
        )
    ).all()
    for row in rows:
        keyring.forget_cached(row.owner_id)
    return len(rows)


# -- dead letters, statistics, configuration, retention -----------------------------------------


async def list_dead_letters(session: AsyncSession, since: datetime, limit: int) -> list[dict[str, Any]]:
    """Latest dead letters within the retention window (reasons and origins, never the raw line)."""
    rows = await session.execute(
        sa.text(
            "SELECT id, created_at, source, origin, position, reason FROM dead_letters WHERE created_at >= :since "
            "ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        {"since": since, "limit": limit},
    )
    return [dict(r._mapping) for r in rows]


async def dead_letter_raw(session: AsyncSession, keyring: CallKeyring, dead_letter_id: int) -> bytes | None:
    """The decrypted raw line of a dead letter (for repair tooling and tests)."""
    row = (
        await session.execute(
            sa.text("SELECT origin, position, key_id, raw_ct FROM dead_letters WHERE id = :id"),
            {"id": dead_letter_id},
        )
    ).first()
    if row is None:
        return None
    key = (await keyring.keys_by_id(session, {row.key_id})).get(row.key_id)
    return decrypt(key, row.raw_ct, _aad("dl", f"{row.origin}:{row.position}")) if key else None


async def stats(session: AsyncSession, since: datetime, from_day: date) -> dict[str, Any]:
    """Per-day figures (live calls within the policy plus kept aggregates) and top topics."""
    live = await session.execute(
        sa.text(
            """
            SELECT (received_at AT TIME ZONE 'Europe/Berlin')::date AS day, count(*) AS calls,
                   count(*) FILTER (WHERE status = 'DONE') AS done,
                   avg(extract(epoch FROM done_at - received_at)) FILTER (WHERE done_at IS NOT NULL) AS avg_done
            FROM calls WHERE received_at >= :since GROUP BY 1
            """
        ),
        {"since": since},
    )
    by_day: dict[date, dict[str, Any]] = {}
    for r in live:
        by_day[r.day] = {"day": r.day, "calls": r.calls, "done": r.done, "avg_seconds_to_done": r.avg_done}
    kept = await session.execute(
        sa.text("SELECT day, calls, done, seconds_to_done_sum FROM call_stats_daily WHERE day >= :d ORDER BY day"),
        {"d": from_day},
    )
    for r in kept:
        entry = by_day.setdefault(r.day, {"day": r.day, "calls": 0, "done": 0, "avg_seconds_to_done": None})
        live_done_sum = (entry["avg_seconds_to_done"] or 0.0) * entry["done"]
        entry["calls"] += r.calls
        entry["done"] += r.done
        entry["avg_seconds_to_done"] = (
            (live_done_sum + r.seconds_to_done_sum) / entry["done"] if entry["done"] else None
        )
    topics = await session.execute(
        sa.text("SELECT topic, count(*) AS n FROM calls WHERE received_at >= :since GROUP BY topic"),
        {"since": since},
    )
    grouped = topic_group({r.topic: r.n for r in topics})
    kept_topics = await session.execute(
        sa.text("SELECT topic, sum(calls) AS n FROM call_stats_topic WHERE day >= :d GROUP BY topic"),
        {"d": from_day},
    )
    for r in kept_topics:
        grouped[r.topic] = grouped.get(r.topic, 0) + int(r.n)
    open_calls = (
        await session.execute(
            sa.text("SELECT count(*) FROM calls WHERE received_at >= :since AND status <> 'DONE'"),
            {"since": since},
        )
    ).scalar_one()
    dead = (
        await session.execute(sa.text("SELECT count(*) FROM dead_letters WHERE created_at >= :since"), {"since": since})
    ).scalar_one()
    top = sorted(grouped.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    return {
        "by_day": [by_day[d] for d in sorted(by_day)],
        "top_topics": [{"topic": t, "calls": n} for t, n in top],
        "open_calls": int(open_calls),
        "dead_letters": int(dead),
    }


async def config_value(session: AsyncSession, key: str) -> Any:
    """A configuration value set by an admin, or None."""
    row = (await session.execute(sa.text("SELECT value FROM ingest_config WHERE key = :k"), {"k": key})).first()
    return row[0] if row else None


async def set_config_value(session: AsyncSession, key: str, value: Any) -> None:
    """Store a configuration value."""
    await session.execute(
        sa.text(
            "INSERT INTO ingest_config (key, value) VALUES (:k, CAST(:v AS jsonb)) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ),
        {"k": key, "v": orjson.dumps(value).decode()},
    )


async def aggregate_calls(session: AsyncSession, call_ids: Sequence[int]) -> None:
    """Fold calls about to be purged into the anonymous daily and topic aggregates."""
    await session.execute(
        sa.text(
            """
            INSERT INTO call_stats_daily (day, calls, done, seconds_to_done_sum)
            SELECT (received_at AT TIME ZONE 'Europe/Berlin')::date, count(*),
                   count(*) FILTER (WHERE done_at IS NOT NULL),
                   coalesce(sum(extract(epoch FROM done_at - received_at)) FILTER (WHERE done_at IS NOT NULL), 0)
            FROM calls WHERE id = ANY(:ids) GROUP BY 1
            ON CONFLICT (day) DO UPDATE SET calls = call_stats_daily.calls + EXCLUDED.calls,
                done = call_stats_daily.done + EXCLUDED.done,
                seconds_to_done_sum = call_stats_daily.seconds_to_done_sum + EXCLUDED.seconds_to_done_sum
            """
        ),
        {"ids": list(call_ids)},
    )
    rows = await session.execute(
        sa.text(
            "SELECT (received_at AT TIME ZONE 'Europe/Berlin')::date AS day, topic, count(*) AS n FROM calls "
            "WHERE id = ANY(:ids) GROUP BY 1, 2"
        ),
        {"ids": list(call_ids)},
    )
    per_day: dict[date, dict[str, int]] = {}
    for r in rows:
        per_day.setdefault(r.day, {})[r.topic] = int(r.n)
    for day, counts in per_day.items():
        for topic, n in topic_group(counts).items():
            await session.execute(
                sa.text(
                    "INSERT INTO call_stats_topic (day, topic, calls) VALUES (:d, :t, :n) "
                    "ON CONFLICT (day, topic) DO UPDATE SET calls = call_stats_topic.calls + EXCLUDED.calls"
                ),
                {"d": day, "t": topic, "n": n},
            )


async def expired_call_batch(session: AsyncSession, cutoff: datetime, limit: int) -> list[tuple[int, str]]:
    """Ids and numbers of calls older than the cutoff, oldest first."""
    rows = await session.execute(
        sa.text("SELECT id, caller_number FROM calls WHERE received_at < :c ORDER BY received_at LIMIT :l"),
        {"c": cutoff, "l": limit},
    )
    return [(r.id, r.caller_number) for r in rows]


async def purge_dead_letters(session: AsyncSession, cutoff: datetime) -> tuple[int, list[str]]:
    """Delete dead letters older than the cutoff; returns the count and the owners of their keys."""
    rows = (
        await session.execute(
            sa.text(
                "DELETE FROM dead_letters d USING data_keys k WHERE d.created_at < :c AND k.key_id = d.key_id "
                "RETURNING k.owner_id"
            ),
            {"c": cutoff},
        )
    ).all()
    orphans = await session.execute(sa.text("DELETE FROM dead_letters WHERE created_at < :c"), {"c": cutoff})
    count = len(rows) + int(orphans.rowcount or 0)  # type: ignore[attr-defined]
    return count, sorted({r.owner_id for r in rows})


async def delete_cursor(session: AsyncSession, name: str) -> None:
    """Forget a file's offset (the file was purged)."""
    await session.execute(sa.text("DELETE FROM file_offsets WHERE file_name = :n"), {"n": name})


async def start_run(session: AsyncSession, started_at: datetime, cutoff: datetime) -> int:
    """Record the start of a purge run."""
    return int(
        (
            await session.execute(
                sa.text("INSERT INTO retention_runs (started_at, cutoff) VALUES (:s, :c) RETURNING id"),
                {"s": started_at, "c": cutoff},
            )
        ).scalar_one()
    )


async def finish_run(session: AsyncSession, run_id: int, counts: dict[str, int], errors: list[str]) -> None:
    """Record the end, counts and errors of a purge run."""
    await session.execute(
        sa.text(
            "UPDATE retention_runs SET finished_at = now(), calls_deleted = :calls, "
            "dead_letters_deleted = :dead, files_deleted = :files, keys_shredded = :keys, "
            "errors = CAST(:errors AS jsonb) WHERE id = :id"
        ),
        {**counts, "errors": orjson.dumps(errors).decode(), "id": run_id},
    )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
