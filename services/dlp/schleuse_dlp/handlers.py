"""Bus subjects of the DLP service: dlp.scan, dlp.restore, dlp.forget and the admin policy subjects."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from schleuse_common.bus import Bus, BusError, Envelope
from schleuse_common.contracts.audit import AuditEvent, audit_subject
from schleuse_common.contracts.dlp import (
    DLP_AUDIT_AREA,
    DLP_FORGET,
    DLP_POLICIES_DELETE,
    DLP_POLICIES_FAIL_OPEN,
    DLP_POLICIES_LIST,
    DLP_POLICIES_PUT,
    DLP_RESTORE,
    DLP_SCAN,
    POLICY_CHANGE_ACTIONS,
    FailOpenRequest,
    FailOpenScopes,
    FindingSummary,
    ForgetRequest,
    ForgetResult,
    PoliciesList,
    PoliciesListRequest,
    PolicyDelete,
    PolicyDeleted,
    PolicyDoc,
    PolicyPut,
    RestoreRequest,
    RestoreResult,
    ScanRequest,
    ScanResult,
)
from schleuse_common.contracts.policy import POLICY_EVENT, PolicyEvent
from schleuse_dlp.domain.analyzer import Analysis, Analyzer
from schleuse_dlp.domain.policy import Policy
from schleuse_dlp.domain.redaction import PLACEHOLDER, Redaction, redact
from schleuse_dlp.domain.restore import restore
from schleuse_dlp.domain.spans import ALL_TYPES
from schleuse_dlp.settings import DlpSettings
from schleuse_dlp.store import MappingConflict, MappingStore, PolicyStore

log = structlog.get_logger("schleuse.dlp")

_MAX_CONFLICT_RETRIES = 3


class DlpHandlers:
    """Serves the DLP subjects; the analyzer is pure, the stores do the I/O."""

    def __init__(
        self, bus: Bus, analyzer: Analyzer, mappings: MappingStore, policies: PolicyStore, settings: DlpSettings
    ) -> None:
        self._bus = bus
        self._analyzer = analyzer
        self._mappings = mappings
        self._policies = policies
        self._settings = settings
        self._hash_key: bytes | None = None

    async def register(self) -> None:
        """Subscribe every subject (queue groups, so replicas share the load)."""
        await self._bus.serve(DLP_SCAN, ScanRequest, self.scan)
        await self._bus.serve(DLP_RESTORE, RestoreRequest, self.restore)
        await self._bus.serve(DLP_FORGET, ForgetRequest, self.forget)
        await self._bus.serve(DLP_POLICIES_LIST, PoliciesListRequest, self.list_policies)
        await self._bus.serve(DLP_POLICIES_PUT, PolicyPut, self.put_policy)
        await self._bus.serve(DLP_POLICIES_DELETE, PolicyDelete, self.delete_policy)
        await self._bus.serve(DLP_POLICIES_FAIL_OPEN, FailOpenRequest, self.fail_open)

        async def on_policy_audit(msg: Any) -> None:
            if msg.subject.rsplit(".", 1)[-1] in POLICY_CHANGE_ACTIONS:
                self._policies.invalidate()  # a replica changed a policy: this one reloads too

        # audit facts are also seen by plain subscribers; every replica gets each one
        self._bus._subs.append(await self._bus.nc.subscribe(audit_subject(DLP_AUDIT_AREA, "*"), cb=on_policy_audit))

    async def _analyze(self, text: str) -> Analysis:
        if len(text) <= self._settings.inline_max_chars:
            return self._analyzer.analyze(text)
        return await asyncio.to_thread(self._analyzer.analyze, text)

    async def scan(self, env: Envelope[ScanRequest]) -> ScanResult:
        """Find PII, apply the policy, persist new placeholders, publish a policy.event (never values)."""
        req = env.data
        if len(req.text) > self._settings.max_text_chars:
            raise BusError("too_large", f"text longer than {self._settings.max_text_chars} characters", 413)
        department = req.department or (env.actor.department if env.actor else None)
        policy = (await self._policies.book()).resolve(assistant_id=req.assistant_id, department=department)
        analysis = await self._analyze(req.text)
        if not analysis.spans:  # the common case: no mapping read, no write, no event
            return ScanResult(text=req.text, language=analysis.language)
        redaction = await self._redact_persisting(req.thread_id, req.text, analysis, policy)
        findings = [FindingSummary(entity_type=e, count=n, action=a) for e, n, a in redaction.summary()]
        if findings:
            await self._publish_event(env, req, department, findings, redaction.blocked)
        return ScanResult(text=redaction.text, blocked=redaction.blocked, findings=findings, language=analysis.language)

    async def _redact_persisting(self, thread_id: str, text: str, analysis: Analysis, policy: Policy) -> Redaction:
        hash_key = await self._get_hash_key()
        fresh = False
        for _ in range(_MAX_CONFLICT_RETRIES):
            mapping = await self._mappings.get(thread_id, fresh=fresh)
            redaction = redact(text, analysis.spans, policy, mapping, hash_key)
            try:
                await self._mappings.add(thread_id, redaction.new_placeholders)
            except MappingConflict:
                # another replica numbered this thread's placeholders meanwhile: start from its state
                self._mappings.evict(thread_id)
                fresh = True
                continue
            return redaction
        raise BusError("conflict", "placeholder mapping changed concurrently, retry", 409)

    async def _get_hash_key(self) -> bytes:
        if self._hash_key is None:
            self._hash_key = await self._mappings.hash_key()
        return self._hash_key

    async def _publish_event(
        self,
        env: Envelope[ScanRequest],
        req: ScanRequest,
        department: str | None,
        findings: list[FindingSummary],
        blocked: bool,
    ) -> None:
        actions = {f.action for f in findings}
        decision = "block" if blocked else ("redact" if actions - {"allow"} else "allow")
        event = PolicyEvent(
            kind="dlp.finding",
            user_id=env.actor.id if env.actor else None,
            department=department,
            assistant_id=req.assistant_id,
            thread_id=req.thread_id,
            findings=findings,
            decision=decision,
        )
        # idempotent on the request's envelope id: a retried scan does not count twice
        await self._bus.publish(POLICY_EVENT, event, actor=env.actor, id=f"dlp-{env.id}")

    async def restore(self, env: Envelope[RestoreRequest]) -> RestoreResult:
        """Put the thread's originals back into text for the user."""
        text = env.data.text
        if "[" not in text or PLACEHOLDER.search(text) is None:
            return RestoreResult(text=text)
        mapping = await self._mappings.get(env.data.thread_id)
        if any(m.group(0) not in mapping.originals for m in PLACEHOLDER.finditer(text)):
            # possibly numbered by another replica after we cached the mapping
            mapping = await self._mappings.get(env.data.thread_id, fresh=True)
        return RestoreResult(text=restore(text, mapping))

    async def forget(self, env: Envelope[ForgetRequest]) -> ForgetResult:
        """Delete the thread's mapping and shred its key."""
        return ForgetResult(deleted=await self._mappings.forget(env.data.thread_id))

    async def list_policies(self, env: Envelope[PoliciesListRequest]) -> PoliciesList:
        """All policies (admin and DPO)."""
        if env.actor is None or not env.actor.has_role("admin", "dpo"):
            raise BusError("forbidden", "reading DLP policies needs the admin or dpo role", 403)
        return await self._listing()

    async def put_policy(self, env: Envelope[PolicyPut]) -> PoliciesList:
        """Create or replace a policy (admin), then audit it; a change of `fail_open` needs a human admin."""
        _require_admin(env)
        policy = to_policy(env.data.policy)
        unknown = (set(policy.actions) | set(policy.enabled_types or [])) - ALL_TYPES
        if unknown:
            raise BusError("invalid_policy", f"unknown entity types: {sorted(unknown)}", 422)
        if (policy.scope == "default") != (policy.scope_id is None):
            raise BusError("invalid_policy", "scope_id is required except for the default policy", 422)
        before = (await self._policies.book(fresh=True)).get(policy.scope, policy.scope_id)
        fail_open_changed = policy.fail_open != (before.fail_open if before else False)
        if fail_open_changed and not (env.actor is not None and env.actor.has_role("admin")):
            raise BusError("forbidden", "only an admin may change fail-open", 403)
        await self._policies.put(policy, env.actor.id if env.actor else None)
        log.info("dlp.policy_changed", scope=policy.scope, scope_id=policy.scope_id, fail_open=policy.fail_open)
        await self._audit(
            env,
            "policy_put",
            policy.scope,
            policy.scope_id,
            default_action=policy.default_action,
            actions=",".join(f"{t}={a}" for t, a in sorted(policy.actions.items())),
            enabled_types=None if policy.enabled_types is None else len(policy.enabled_types),
            allow_terms=len(policy.allow_terms),  # counted: a term may name a person
            min_score=policy.min_score,
            fail_open=policy.fail_open,
            fail_open_changed=fail_open_changed,
        )
        return await self._listing()

    async def delete_policy(self, env: Envelope[PolicyDelete]) -> PolicyDeleted:
        """Remove a scope's policy (admin), then audit it; the next more general one applies."""
        _require_admin(env)
        scope, scope_id = env.data.scope, env.data.scope_id
        before = (await self._policies.book(fresh=True)).get(scope, scope_id)
        deleted = await self._policies.delete(scope, scope_id)
        if deleted:
            fail_open = before.fail_open if before else False
            await self._audit(env, "policy_delete", scope, scope_id, fail_open_was=fail_open)
        return PolicyDeleted(deleted=deleted)

    async def fail_open(self, env: Envelope[FailOpenRequest]) -> FailOpenScopes:
        """Which scopes may fail open (no values, only scope ids and flags; read fresh, it is asked rarely)."""
        default, departments, assistants = (await self._policies.book(fresh=True)).fail_open()
        return FailOpenScopes(default=default, departments=departments, assistants=assistants)

    async def _listing(self) -> PoliciesList:
        return PoliciesList(policies=[to_doc(p) for p in (await self._policies.book()).all()])

    async def _audit(
        self,
        env: Envelope[Any],
        action: str,
        scope: str,
        scope_id: str | None,
        **detail: str | int | float | bool | None,
    ) -> None:
        """`audit.dlp.<action>` after the change is committed; it is also the change notice for chat and replicas."""
        event = AuditEvent(
            action=f"{DLP_AUDIT_AREA}.{action}",
            target_type=f"dlp_policy.{scope}",
            target_id=scope_id,
            detail={"scope": scope, **detail},
        )
        await self._bus.publish(audit_subject(DLP_AUDIT_AREA, action), event, actor=env.actor)


def _require_admin(env: Envelope[PolicyPut] | Envelope[PolicyDelete]) -> None:
    if env.actor is None or not (env.actor.has_role("admin") or env.actor.kind == "service"):
        raise BusError("forbidden", "managing DLP policies needs the admin role", 403)


def to_policy(doc: PolicyDoc) -> Policy:
    """The contract's policy document as the domain's policy."""
    return Policy.model_validate(doc.model_dump())


def to_doc(policy: Policy) -> PolicyDoc:
    """The domain's policy as the contract's document."""
    return PolicyDoc.model_validate(policy.model_dump())
