"""DLP policy administration over the bus: the shared contract, audit facts (counts, never terms), fail-open."""

import asyncio
import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError
from schleuse_common.contracts.dlp import (
    DLP_POLICIES_DELETE,
    DLP_POLICIES_FAIL_OPEN,
    DLP_POLICIES_LIST,
    DLP_POLICIES_PUT,
    DLP_SCAN,
    FailOpenRequest,
    FailOpenScopes,
    PoliciesList,
    PoliciesListRequest,
    PolicyDelete,
    PolicyDeleted,
    PolicyDoc,
    PolicyPut,
    ScanRequest,
    ScanResult,
)
from schleuse_common.crypto import DataKeyring, load_kek
from schleuse_common.db import Database, run_migrations
from schleuse_dlp import store
from schleuse_dlp.domain.analyzer import Analyzer
from schleuse_dlp.domain.policy import Policy, PolicyBook
from schleuse_dlp.handlers import DlpHandlers, to_doc, to_policy
from schleuse_dlp.settings import DlpSettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
OFFICIAL = "Katrin Lehmann"  # a public official the organisation allow-lists (synthetic)


@pytest.fixture(scope="module")
async def dlp(infra, actor_key, analyzer: Analyzer):
    await asyncio.to_thread(run_migrations, infra.database_url, "dlp", MIGRATIONS)
    db = Database(infra.database_url, "dlp")
    async with db.session() as session:
        await session.execute(sa.text("DELETE FROM dlp.policies"))
    bus = await Bus.connect(infra.nats_url, f"dlp-policies-{uuid.uuid4().hex[:6]}", actor_key=actor_key)
    await bus.ensure_streams()
    keyring = DataKeyring(store.data_keys, load_kek(infra))
    mappings = store.MappingStore(db, keyring, cache_size=100, cache_seconds=300)
    # a long policy cache: changes must reach it through invalidation, not expiry
    handlers = DlpHandlers(bus, analyzer, mappings, store.PolicyStore(db, 3600), DlpSettings())
    await handlers.register()
    yield bus, db, analyzer, mappings
    async with db.session() as session:
        await session.execute(sa.text("DELETE FROM dlp.policies"))
    await bus.close()
    await db.dispose()


def actor(actor_key: bytes, *roles: str, kind: str = "user", department: str | None = None) -> Actor:
    return Actor(id=f"u-{uuid.uuid4().hex[:8]}", kind=kind, roles=list(roles), department=department).signed(actor_key)


@pytest.fixture
def dlp_bus(dlp) -> Bus:
    return dlp[0]


async def put(bus: Bus, doc: PolicyDoc, who: Actor) -> PoliciesList:
    return await bus.request(DLP_POLICIES_PUT, PolicyPut(policy=doc), PoliciesList, actor=who)


def test_contract_document_and_domain_policy_agree_on_defaults_and_round_trip() -> None:
    assert to_policy(PolicyDoc()) == Policy()  # contract defaults are the domain's (secrets blocked)
    doc = PolicyDoc(scope="assistant", scope_id="a1", actions={"IBAN": "block"}, allow_terms=[OFFICIAL], fail_open=True)
    assert to_doc(to_policy(doc)) == doc
    with pytest.raises(ValidationError):
        PolicyDoc(scope="department")  # a department policy names its department
    with pytest.raises(ValidationError):
        PolicyDoc(scope="default", scope_id="x")


def test_fail_open_resolves_like_policies_most_specific_scope_first() -> None:
    book = PolicyBook(
        [
            Policy(fail_open=True),
            Policy(scope="department", scope_id="hr", fail_open=False),
            Policy(scope="assistant", scope_id="a-open", fail_open=True),
        ]
    )
    default, departments, assistants = book.fail_open()
    scopes = FailOpenScopes(default=default, departments=departments, assistants=assistants)
    assert scopes.applies(assistant_id=None, department="it")  # the default's setting
    assert not scopes.applies(assistant_id=None, department="hr")  # hr's own policy keeps it closed
    assert scopes.applies(assistant_id="a-open", department="hr")  # the assistant's policy wins
    assert not FailOpenScopes().applies(assistant_id="a-open", department="hr")  # nothing known: closed


async def test_put_is_audited_with_counts_never_terms_and_applies_at_once(dlp_bus: Bus, actor_key: bytes) -> None:
    department = f"kasse-{uuid.uuid4().hex[:6]}"
    user = actor(actor_key, "user", department=department)
    text = f"Bürgermeisterin {OFFICIAL} erhält die IBAN DE89 3704 0044 0532 0130 00."
    before = await dlp_bus.request(DLP_SCAN, ScanRequest(text=text, thread_id=uuid.uuid4().hex), ScanResult, actor=user)
    assert OFFICIAL not in before.text and not before.blocked  # cached book: the default policy

    audits = await dlp_bus.nc.subscribe("audit.dlp.>")
    doc = PolicyDoc(scope="department", scope_id=department, actions={"IBAN": "block"}, allow_terms=[OFFICIAL])
    admin = actor(actor_key, "admin")
    listing = await put(dlp_bus, doc, admin)
    assert doc in listing.policies
    msg = await audits.next_msg(timeout=5)
    await audits.unsubscribe()
    assert msg.subject == "audit.dlp.policy_put"
    assert OFFICIAL not in msg.data.decode()
    event = json.loads(msg.data)
    assert event["actor"]["id"] == admin.id
    assert event["data"]["target_id"] == department and event["data"]["target_type"] == "dlp_policy.department"
    assert event["data"]["detail"]["allow_terms"] == 1 and "IBAN=block" in event["data"]["detail"]["actions"]

    blocked = await dlp_bus.request(
        DLP_SCAN, ScanRequest(text=text, thread_id=uuid.uuid4().hex), ScanResult, actor=user
    )
    assert blocked.blocked and [f.entity_type for f in blocked.findings if f.action == "block"] == ["IBAN"]
    allowed = await dlp_bus.request(
        DLP_SCAN,
        ScanRequest(text=f"Grüße an {OFFICIAL}", thread_id=uuid.uuid4().hex),
        ScanResult,
        actor=user,
    )
    assert allowed.text == f"Grüße an {OFFICIAL}" and allowed.findings == []


async def test_only_admins_manage_and_dpo_may_read(dlp_bus: Bus, actor_key: bytes) -> None:
    doc = PolicyDoc(scope="assistant", scope_id="a-rbac")
    for roles in (("user",), ("dpo",), ("steward",)):
        with pytest.raises(BusError) as exc:
            await put(dlp_bus, doc, actor(actor_key, *roles))
        assert exc.value.status == 403
        with pytest.raises(BusError) as exc:
            await dlp_bus.request(
                DLP_POLICIES_DELETE,
                PolicyDelete(scope="assistant", scope_id="a-rbac"),
                PolicyDeleted,
                actor=actor(actor_key, *roles),
            )
        assert exc.value.status == 403
    listing = await dlp_bus.request(
        DLP_POLICIES_LIST, PoliciesListRequest(), PoliciesList, actor=actor(actor_key, "dpo")
    )
    assert listing.policies[0].scope == "default"
    with pytest.raises(BusError) as exc:
        await dlp_bus.request(DLP_POLICIES_LIST, PoliciesListRequest(), PoliciesList, actor=actor(actor_key, "user"))
    assert exc.value.status == 403


async def test_fail_open_is_set_by_an_admin_audited_and_published_to_chat(dlp_bus: Bus, actor_key: bytes) -> None:
    assistant = f"a-{uuid.uuid4().hex[:6]}"
    doc = PolicyDoc(scope="assistant", scope_id=assistant, fail_open=True)
    service = actor(actor_key, kind="service")
    with pytest.raises(BusError) as exc:
        await put(dlp_bus, doc, service)  # services may write policies, but never open the lock
    assert exc.value.status == 403
    scopes = await dlp_bus.request(DLP_POLICIES_FAIL_OPEN, FailOpenRequest(), FailOpenScopes)
    assert assistant not in scopes.assistants

    audits = await dlp_bus.nc.subscribe("audit.dlp.>")
    await put(dlp_bus, doc, actor(actor_key, "admin"))
    scopes = await dlp_bus.request(DLP_POLICIES_FAIL_OPEN, FailOpenRequest(), FailOpenScopes)
    assert scopes.applies(assistant_id=assistant, department=None) and not scopes.default
    put_event = json.loads((await audits.next_msg(timeout=5)).data)["data"]
    assert put_event["detail"]["fail_open"] is True and put_event["detail"]["fail_open_changed"] is True

    deleted = await dlp_bus.request(
        DLP_POLICIES_DELETE,
        PolicyDelete(scope="assistant", scope_id=assistant),
        PolicyDeleted,
        actor=actor(actor_key, "admin"),
    )
    assert deleted.deleted == 1
    msg = await audits.next_msg(timeout=5)
    await audits.unsubscribe()
    assert msg.subject == "audit.dlp.policy_delete"
    assert json.loads(msg.data)["data"]["detail"]["fail_open_was"] is True
    scopes = await dlp_bus.request(DLP_POLICIES_FAIL_OPEN, FailOpenRequest(), FailOpenScopes)
    assert not scopes.applies(assistant_id=assistant, department=None)


async def test_deleting_a_missing_policy_changes_and_audits_nothing(dlp_bus: Bus, actor_key: bytes) -> None:
    audits = await dlp_bus.nc.subscribe("audit.dlp.>")
    deleted = await dlp_bus.request(
        DLP_POLICIES_DELETE,
        PolicyDelete(scope="department", scope_id=f"none-{uuid.uuid4().hex[:6]}"),
        PolicyDeleted,
        actor=actor(actor_key, "admin"),
    )
    assert deleted.deleted == 0
    await dlp_bus.nc.flush()
    with pytest.raises(TimeoutError):
        await audits.next_msg(timeout=0.3)
    await audits.unsubscribe()


async def test_another_replica_reloads_its_cached_policies_on_the_audit_notice(dlp, infra, actor_key: bytes) -> None:
    _, db, analyzer, mappings = dlp
    other_bus = await Bus.connect(infra.nats_url, "dlp-replica-2", actor_key=actor_key)
    try:
        other_store = store.PolicyStore(db, 3600)
        await DlpHandlers(other_bus, analyzer, mappings, other_store, DlpSettings()).register()
        await other_bus.nc.flush()
        department = f"it-{uuid.uuid4().hex[:6]}"
        assert (await other_store.book()).get("department", department) is None  # cached for an hour
        await put(
            dlp[0], PolicyDoc(scope="department", scope_id=department, default_action="mask"), actor(actor_key, "admin")
        )
        for _ in range(100):
            if (policy := (await other_store.book()).get("department", department)) is not None:
                break
            await asyncio.sleep(0.02)
        assert policy is not None and policy.default_action == "mask"
    finally:
        await other_bus.close()
