"""The calls API on the bus (`calls.api.*`): rights, masking, audit of unmasked views, commands, rights requests."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError, Envelope
from schleuse_common.contracts import calls as c
from schleuse_common.db import Database
from schleuse_ingest import store
from schleuse_ingest.domain import calls as domain
from schleuse_ingest.domain.access import AccessPolicy, mask_birth_date, mask_number
from schleuse_ingest.domain.events import InvalidEvent, normalise_number
from schleuse_ingest.domain.query import Quick, Sort, check_limit, resolve
from schleuse_ingest.domain.retention import RetentionPolicy
from schleuse_ingest.ingestor import publish_changed
from schleuse_ingest.keys import CallKeyring, caller_owner

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)
RETENTION_KEY = "retention_days"
_STATUS = {
    domain.CallNotFound: 404,
    domain.StaleVersion: 409,
    domain.Forbidden: 403,
    domain.InvalidRequest: 422,
}


class RetentionSource:
    """The policy in force: an admin's setting from the database, else the configured default (cached briefly)."""

    def __init__(self, default_days: int, ttl_s: float = 5.0) -> None:
        self.default_days = default_days
        self.ttl_s = ttl_s
        self._cached: tuple[float, RetentionPolicy] | None = None

    async def policy(self, session: AsyncSession) -> RetentionPolicy:
        """The current policy (re-read every ttl_s so all replicas converge)."""
        now = time.monotonic()
        if self._cached and now - self._cached[0] < self.ttl_s:
            return self._cached[1]
        days = await store.config_value(session, RETENTION_KEY)
        policy = RetentionPolicy(int(days) if days else self.default_days)
        self._cached = (now, policy)
        return policy

    def invalidate(self) -> None:
        """Forget the cached policy (after an admin changed it)."""
        self._cached = None


class CallsApi:
    """One method per `calls.api.*` subject; the gateway calls them with the caller's signed Actor."""

    def __init__(
        self,
        db: Database,
        keyring: CallKeyring,
        bus: Bus | None,
        access: AccessPolicy,
        retention: RetentionSource,
        ingest_dir: Path,
        purge: Callable[[], Awaitable[c.PurgeResult]] | None = None,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.bus = bus
        self.access = access
        self.retention = retention
        self.ingest_dir = ingest_dir
        self.purge_job = purge

    async def register(self, bus: Bus, *, prefix: str = "") -> None:
        """Serve every subject of the calls API (queue group per subject; `prefix` isolates test runs)."""
        routes: list[tuple[str, type[BaseModel], Callable[[Any], Awaitable[BaseModel]]]] = [
            (c.CALLS_API_LIST, c.ListCallsRequest, self.list_calls),
            (c.CALLS_API_GET, c.GetCallRequest, self.get),
            (c.CALLS_API_STATUS, c.ChangeStatusRequest, self.change_status),
            (c.CALLS_API_NOTE, c.AddNoteRequest, self.add_note),
            (c.CALLS_API_ASSIGN, c.AssignRequest, self.assign),
            (c.CALLS_API_BULK, c.BulkRequest, self.bulk),
            (c.CALLS_API_EXPORT, c.SubjectRequest, self.export),
            (c.CALLS_API_DELETE, c.SubjectRequest, self.delete),
            (c.CALLS_API_STATS, c.StatsRequest, self.stats),
            (c.CALLS_API_CONFIG, c.ConfigRequest, self.config),
            (c.CALLS_API_PURGE, c.PurgeRequest, self.purge),
            (c.CALLS_API_DEAD_LETTERS, c.DeadLettersRequest, self.dead_letters),
        ]
        for subject, model, handler in routes:
            await bus.serve(prefix + subject, model, _mapped(handler))

    # -- reads ---------------------------------------------------------------------------

    async def list_calls(self, env: Envelope[c.ListCallsRequest]) -> c.CallPage:
        """`GET /api/calls`."""
        actor = self._require(env, self.access.can_read)
        req = env.data
        now = datetime.now(UTC)
        async with self.db.session() as session:
            policy = await self.retention.policy(session)
            filters = resolve(
                cutoff=policy.cutoff(now),
                now=now,
                actor_id=actor.id,
                q=req.q,
                statuses=[domain.Status(s) for s in req.status],
                since=req.from_,
                until=req.to,
                assignee=req.assignee,
                priorities=[domain.Priority(p) for p in req.priority],
                quick=[Quick(q) for q in req.quick],
                ids=req.ids,
            )
            rows, next_cursor, total, exact = await store.list_calls(
                session,
                filters,
                sort=Sort(req.sort),
                cursor=req.cursor,
                limit=check_limit(req.limit),
                with_total=req.with_total,
            )
            items = await self._views(session, rows, actor, masked=req.masked)
        return c.CallPage(items=items, next_cursor=next_cursor, total=total, total_exact=exact)

    async def get(self, env: Envelope[c.GetCallRequest]) -> c.CallDetail:
        """`GET /api/calls/{id}` with history, notes and audit."""
        actor = self._require(env, self.access.can_read)
        async with self.db.session() as session:
            since = await self._since(session)
            row = await store.get_call(session, env.data.id, since)
            return await self._detail(session, row, actor, masked=env.data.masked)

    async def _detail(
        self, session: AsyncSession, row: store.CallRow, actor: Actor, *, masked: bool, for_export: bool = False
    ) -> c.CallDetail:
        summary = (await self._views(session, [row], actor, masked=masked, for_export=for_export))[0]
        return c.CallDetail(
            **summary.model_dump(),
            history=[c.StatusEntry(**h) for h in await store.history(session, row.id)],
            notes=[c.NoteView(**n) for n in await store.notes(session, self.keyring, row.id)],
            audit=[c.AuditEntry(**a) for a in await store.audit_entries(session, row.id)],
        )

    async def _views(
        self,
        session: AsyncSession,
        rows: Sequence[store.CallRow],
        actor: Actor,
        *,
        masked: bool,
        for_export: bool = False,
    ) -> list[c.CallSummary]:
        unmasked = for_export or (not masked and self.access.sees_pii(actor.roles))
        dobs = await store.birth_dates(session, self.keyring, rows)
        if unmasked and not for_export:  # an export leaves its own receipt
            await store.audit_views(session, [r.id for r in rows], actor.id, actor.roles)
        return [_summary(r, dobs.get(r.id), unmasked) for r in rows]

    async def dead_letters(self, env: Envelope[c.DeadLettersRequest]) -> c.DeadLettersResult:
        """Rejected events (reasons only), for admins repairing a feed."""
        self._require(env, self.access.can_administer)
        async with self.db.session() as session:
            rows = await store.list_dead_letters(session, await self._since(session), env.data.limit)
        return c.DeadLettersResult(items=[c.DeadLetterView(**r) for r in rows])

    async def stats(self, env: Envelope[c.StatsRequest]) -> c.StatsResult:
        """Statistics for admins: per day, top topics, open calls, dead letters."""
        self._require(env, self.access.can_administer)
        now = datetime.now(UTC)
        async with self.db.session() as session:
            policy = await self.retention.policy(session)
            from_day = (now - timedelta(days=env.data.days)).date()
            since = max(policy.cutoff(now), now - timedelta(days=env.data.days))
            figures = await store.stats(session, since, from_day)
        return c.StatsResult(**figures, retention_days=policy.days)

    # -- commands ------------------------------------------------------------------------

    async def change_status(self, env: Envelope[c.ChangeStatusRequest]) -> c.CallChanged:
        """`PATCH /api/calls/{id}/status` (409 on a stale version; DONE is idempotent)."""
        req = env.data
        return await self._command(
            env,
            req.id,
            "status_change",
            lambda s: domain.change_status(s, domain.Status(req.status), req.version),
        )

    async def assign(self, env: Envelope[c.AssignRequest]) -> c.CallChanged:
        """`POST /api/calls/{id}/assign`."""
        req = env.data
        return await self._command(env, req.id, "assign", lambda s: domain.assign(s, req.assignee, req.version))

    async def _command(
        self,
        env: Envelope[Any],
        call_id: int,
        action: str,
        decide: Callable[[domain.CallState], domain.Change],
    ) -> c.CallChanged:
        actor = self._require(env, self.access.can_change)
        async with self.db.session() as session:
            since = await self._since(session)
            row = await store.get_call(session, call_id, since, for_update=True)
            change = decide(store.state_of(row))
            await store.apply_change(session, change, action=action, actor_id=actor.id, actor_roles=actor.roles)
            row = await store.get_call(session, call_id, since)
            view = (await self._views(session, [row], actor, masked=False))[0]
        if change.changed:
            await self._changed("updated", [(row.id, row.version)])
        return c.CallChanged(call=view, changed=change.changed)

    async def add_note(self, env: Envelope[c.AddNoteRequest]) -> c.CallChanged:
        """`POST /api/calls/{id}/notes` (encrypted at rest, audited without content)."""
        actor = self._require(env, self.access.can_change)
        body = domain.check_note(env.data.body)
        async with self.db.session() as session:
            since = await self._since(session)
            row = await store.get_call(session, env.data.id, since, for_update=True)
            await store.add_note(session, self.keyring, row, body, actor_id=actor.id, actor_roles=actor.roles)
            row = await store.get_call(session, env.data.id, since)
            view = (await self._views(session, [row], actor, masked=False))[0]
        await self._changed("updated", [(row.id, row.version)])
        return c.CallChanged(call=view, changed=True)

    async def bulk(self, env: Envelope[c.BulkRequest]) -> c.BulkResult:
        """Bulk status and/or assignment; each item succeeds or fails on its own."""
        actor = self._require(env, self.access.can_change)
        req = env.data
        if req.status is None and not req.assign:
            raise domain.InvalidRequest("give a status, an assignee or both")
        items: list[c.BulkItem] = []
        changed: list[tuple[int, int]] = []
        async with self.db.session() as session:
            since = await self._since(session)
            for call_id in dict.fromkeys(req.ids):
                item = await self._bulk_item(session, actor, req, call_id, since)
                items.append(item)
                if item.outcome == "changed" and item.version is not None:
                    changed.append((call_id, item.version))
        await self._changed("updated", changed)
        return c.BulkResult(items=items)

    async def _bulk_item(
        self, session: AsyncSession, actor: Actor, req: c.BulkRequest, call_id: int, since: datetime
    ) -> c.BulkItem:
        try:
            async with session.begin_nested():
                row = await store.get_call(session, call_id, since, for_update=True)
                state = store.state_of(row)
                expected = req.versions.get(call_id)
                any_change = False
                if req.assign:
                    change = domain.assign(state, req.assignee, expected)
                    await store.apply_change(
                        session, change, action="assign", actor_id=actor.id, actor_roles=actor.roles
                    )
                    any_change |= change.changed
                    state, expected = change.state, (change.state.version if expected is not None else None)
                if req.status is not None:
                    change = domain.change_status(state, domain.Status(req.status), expected)
                    await store.apply_change(
                        session, change, action="status_change", actor_id=actor.id, actor_roles=actor.roles
                    )
                    any_change |= change.changed
                    state = change.state
        except domain.CallNotFound:
            return c.BulkItem(id=call_id, outcome="not_found")
        except domain.StaleVersion as e:
            return c.BulkItem(id=call_id, outcome="conflict", version=e.current_version)
        return c.BulkItem(id=call_id, outcome="changed" if any_change else "unchanged", version=state.version)

    # -- rights requests ----------------------------------------------------------------

    async def export(self, env: Envelope[c.SubjectRequest]) -> c.ExportResult:
        """Everything kept about one call or one caller number, decrypted; leaves an audit receipt."""
        actor = self._require(env, self.access.can_exercise_rights)
        async with self.db.session() as session:
            rows = await self._subject_rows(session, env.data)
            exported = []
            for row in rows:
                detail = await self._detail(session, row, actor, masked=False, for_export=True)
                raw = await store.raw_payload(session, self.keyring, row.id)
                exported.append(c.ExportedCall(call=detail, raw_payload=raw))
                await store.audit_rights(session, row.id, "export", actor.id, actor.roles, {"scope": _scope(env.data)})
            if env.data.caller_number is not None:
                await store.audit_rights(
                    session, None, "export", actor.id, actor.roles, {"scope": "caller", "calls": len(rows)}
                )
        return c.ExportResult(calls=exported, exported_at=datetime.now(UTC))

    async def delete(self, env: Envelope[c.SubjectRequest]) -> c.DeleteResult:
        """Erase one call or every call of a caller number; a caller's key is shredded once unused."""
        actor = self._require(env, self.access.can_exercise_rights)
        async with self.db.session() as session:
            rows = await self._subject_rows(session, env.data, include_expired=True)
            ids = [r.id for r in rows]
            deleted = await store.delete_calls(session, ids)
            owners = sorted({caller_owner(r.caller_number) for r in rows})
            shredded = await store.shred_unused_keys(session, self.keyring, owners)
            for call_id in ids:
                await store.audit_rights(session, call_id, "delete", actor.id, actor.roles, {"scope": _scope(env.data)})
            if env.data.caller_number is not None:
                await store.audit_rights(
                    session,
                    None,
                    "delete",
                    actor.id,
                    actor.roles,
                    {"scope": "caller", "calls_deleted": deleted, "keys_shredded": shredded},
                )
        await self._changed("deleted", [(i, 0) for i in ids])
        return c.DeleteResult(calls_deleted=deleted, keys_shredded=shredded)

    async def _subject_rows(
        self, session: AsyncSession, req: c.SubjectRequest, *, include_expired: bool = False
    ) -> list[store.CallRow]:
        if (req.call_id is None) == (req.caller_number is None):
            raise domain.InvalidRequest("give exactly one of call_id and caller_number")
        since = datetime.min.replace(tzinfo=UTC) if include_expired else await self._since(session)
        if req.call_id is not None:
            return [await store.get_call(session, req.call_id, since)]
        try:
            number = normalise_number(req.caller_number)
        except InvalidEvent as e:
            raise domain.InvalidRequest("caller_number is not a valid phone number") from e
        return await store.calls_of_number(session, number, since)

    # -- administration -----------------------------------------------------------------

    async def config(self, env: Envelope[c.ConfigRequest]) -> c.ConfigResult:
        """Read or change the retention period (admin)."""
        self._require(env, self.access.can_administer)
        async with self.db.session() as session:
            if env.data.retention_days is not None:
                await store.set_config_value(session, RETENTION_KEY, env.data.retention_days)
                await store.audit_rights(
                    session,
                    None,
                    "config",
                    env.actor.id if env.actor else "",
                    [],
                    {"retention_days": env.data.retention_days},
                )
                self.retention.invalidate()
            policy = await self.retention.policy(session)
        return c.ConfigResult(retention_days=policy.days, ingest_dir=str(self.ingest_dir))

    async def purge(self, env: Envelope[c.PurgeRequest]) -> c.PurgeResult:
        """Run the retention purge now (admin)."""
        self._require(env, self.access.can_administer)
        if self.purge_job is None:
            raise BusError("unavailable", "purge is not configured", 503)
        return await self.purge_job()

    # -- helpers ------------------------------------------------------------------------

    def _require(self, env: Envelope[Any], allowed: Callable[[list[str]], bool]) -> Actor:
        if env.actor is None:
            raise BusError("unauthenticated", "an actor is required", 401)
        if not allowed(env.actor.roles):
            raise domain.Forbidden("role not allowed")
        return env.actor

    async def _since(self, session: AsyncSession) -> datetime:
        return (await self.retention.policy(session)).cutoff(datetime.now(UTC))

    async def _changed(self, change: str, items: list[tuple[int, int]]) -> None:
        if self.bus is not None and items:
            await publish_changed(self.bus, change, [i for i, _ in items], [v for _, v in items])


def _summary(r: store.CallRow, dob: date | None, unmasked: bool) -> c.CallSummary:
    return c.CallSummary(
        id=r.id,
        received_at=r.received_at,
        caller_number=r.caller_number if unmasked else mask_number(r.caller_number),
        caller_name=r.caller_name,
        date_of_birth=(dob.isoformat() if dob else None) if unmasked else mask_birth_date(dob),
        topic=r.topic,
        priority=r.priority,
        source=r.source,
        status=r.status,
        assignee=r.assignee,
        version=r.version,
        updated_at=r.updated_at,
        pii_masked=not unmasked,
    )


def _scope(req: c.SubjectRequest) -> str:
    return "call" if req.call_id is not None else "caller"


def _mapped(handler: Callable[[Envelope[T]], Awaitable[R]]) -> Callable[[Envelope[T]], Awaitable[R]]:
    """Map domain errors once, at the edge, to bus errors with HTTP-like statuses."""

    async def wrapped(env: Envelope[T]) -> R:
        try:
            return await handler(env)
        except domain.CallError as e:
            status = _STATUS.get(type(e), 400)
            raise BusError(e.code, str(e), status) from e

    return wrapped
