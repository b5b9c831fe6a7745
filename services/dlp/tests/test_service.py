"""The DLP service on the real bus and Postgres: scan, restore, forget, policies, policy events."""

import asyncio
import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError
from schleuse_common.contracts.dlp import (
    DLP_FORGET,
    DLP_POLICIES_PUT,
    DLP_RESTORE,
    DLP_SCAN,
    ForgetRequest,
    ForgetResult,
    PoliciesList,
    PolicyDoc,
    PolicyPut,
    RestoreRequest,
    RestoreResult,
    ScanRequest,
    ScanResult,
)
from schleuse_common.crypto import DataKeyring, load_kek
from schleuse_common.db import Database, run_migrations
from schleuse_dlp import store
from schleuse_dlp.domain.analyzer import Analyzer
from schleuse_dlp.domain.restore import PlaceholderStreamBuffer
from schleuse_dlp.handlers import DlpHandlers
from schleuse_dlp.settings import DlpSettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
TEXT = "Hallo, mein Name ist Jonas Becker, meine IBAN ist DE89 3704 0044 0532 0130 00."


@pytest.fixture(scope="module")
async def env(infra, actor_key, analyzer: Analyzer):
    await asyncio.to_thread(run_migrations, infra.database_url, "dlp", MIGRATIONS)
    db = Database(infra.database_url, "dlp")
    async with db.session() as session:
        for table in ("placeholders", "policies", "data_keys"):
            await session.execute(sa.text(f"DELETE FROM dlp.{table}"))
    bus = await Bus.connect(infra.nats_url, f"dlp-test-{uuid.uuid4().hex[:6]}", actor_key=actor_key)
    await bus.ensure_streams()
    settings = DlpSettings(policy_cache_seconds=0)
    keyring = DataKeyring(store.data_keys, load_kek(infra))
    mappings = store.MappingStore(db, keyring, cache_size=100, cache_seconds=300)
    handlers = DlpHandlers(bus, analyzer, mappings, store.PolicyStore(db, 0), settings)
    await handlers.register()
    yield bus, db, mappings
    await bus.close()
    await db.dispose()


def user(actor_key: bytes, **kw) -> Actor:
    return Actor(id="u-pseudo-1", roles=["user"], department="einkauf", **kw).signed(actor_key)


def admin(actor_key: bytes) -> Actor:
    return Actor(id="u-admin", roles=["admin"]).signed(actor_key)


async def test_scan_redacts_stores_encrypted_and_restores(env, actor_key):
    bus, db, _ = env
    thread = f"t-{uuid.uuid4().hex[:8]}"
    events = await bus.nc.subscribe("policy.event")
    res = await bus.request(DLP_SCAN, ScanRequest(text=TEXT, thread_id=thread), ScanResult, actor=user(actor_key))
    assert res.text == "Hallo, mein Name ist [PERSON_1], meine IBAN ist [IBAN_1]."
    assert {(f.entity_type, f.count, f.action) for f in res.findings} == {
        ("PERSON", 1, "redact"),
        ("IBAN", 1, "redact"),
    }
    assert res.language == "de" and not res.blocked

    msg = await events.next_msg(timeout=5)
    await events.unsubscribe()
    event = json.loads(msg.data)
    assert event["data"]["user_id"] == "u-pseudo-1" and event["data"]["department"] == "einkauf"
    assert "Jonas" not in msg.data.decode() and "DE89" not in msg.data.decode()

    async with db.session() as s:
        rows = (
            await s.execute(
                sa.text("SELECT value_enc, value_hmac FROM dlp.placeholders WHERE thread_id = :t"), {"t": thread}
            )
        ).all()
    assert len(rows) == 2
    assert all(b"Jonas" not in bytes(r.value_enc) and b"DE89" not in bytes(r.value_enc) for r in rows)

    again = await bus.request(
        DLP_SCAN, ScanRequest(text="Grüße von Jonas Becker", thread_id=thread), ScanResult, actor=user(actor_key)
    )
    assert again.text == "Grüße von [PERSON_1]"

    answer = "Gern, [PERSON_1]. Ich habe die IBAN [IBAN_1] notiert."
    restored = await bus.request(DLP_RESTORE, RestoreRequest(text=answer, thread_id=thread), RestoreResult)
    assert restored.text == "Gern, Jonas Becker. Ich habe die IBAN DE89 3704 0044 0532 0130 00 notiert."


async def test_streamed_answer_restored_chunk_by_chunk_over_the_bus(env, actor_key):
    bus, _, _ = env
    thread = f"t-{uuid.uuid4().hex[:8]}"
    await bus.request(DLP_SCAN, ScanRequest(text=TEXT, thread_id=thread), ScanResult, actor=user(actor_key))
    answer = "Hallo [PERSON_1], Ihre IBAN [IBAN_1] ist gespeichert."
    buffer = PlaceholderStreamBuffer()
    shown = []
    for i in range(0, len(answer), 4):
        ready = buffer.push(answer[i : i + 4])
        if ready:
            shown.append(
                (await bus.request(DLP_RESTORE, RestoreRequest(text=ready, thread_id=thread), RestoreResult)).text
            )
    tail = buffer.flush()
    shown.append((await bus.request(DLP_RESTORE, RestoreRequest(text=tail, thread_id=thread), RestoreResult)).text)
    assert "".join(shown) == "Hallo Jonas Becker, Ihre IBAN DE89 3704 0044 0532 0130 00 ist gespeichert."


async def test_text_without_findings_writes_nothing(env, actor_key):
    bus, db, _ = env
    thread = f"t-{uuid.uuid4().hex[:8]}"
    text = "Bitte fasse den Quartalsbericht in drei Sätzen zusammen."
    res = await bus.request(DLP_SCAN, ScanRequest(text=text, thread_id=thread), ScanResult, actor=user(actor_key))
    assert res.text == text and res.findings == []
    async with db.session() as s:
        count = (
            await s.execute(sa.text("SELECT count(*) FROM dlp.placeholders WHERE thread_id = :t"), {"t": thread})
        ).scalar()
    assert count == 0


async def test_forget_deletes_mapping_and_shreds_key(env, actor_key):
    bus, db, _ = env
    thread = f"t-{uuid.uuid4().hex[:8]}"
    await bus.request(DLP_SCAN, ScanRequest(text=TEXT, thread_id=thread), ScanResult, actor=user(actor_key))
    res = await bus.request(DLP_FORGET, ForgetRequest(thread_id=thread), ForgetResult)
    assert res.deleted == 2
    async with db.session() as s:
        keys = (
            await s.execute(
                sa.text("SELECT count(*) FROM dlp.data_keys WHERE owner_id = :o"), {"o": f"thread:{thread}"}
            )
        ).scalar()
    assert keys == 0
    restored = await bus.request(DLP_RESTORE, RestoreRequest(text="[PERSON_1]", thread_id=thread), RestoreResult)
    assert restored.text == "[PERSON_1]"


async def test_policies_per_assistant_and_admin_only(env, actor_key):
    bus, _, _ = env
    policy = PolicyDoc(scope="assistant", scope_id="a-hr", actions={"IBAN": "block", "PERSON": "mask"})
    with pytest.raises(BusError) as exc:
        await bus.request(DLP_POLICIES_PUT, PolicyPut(policy=policy), PoliciesList, actor=user(actor_key))
    assert exc.value.status == 403
    await bus.request(DLP_POLICIES_PUT, PolicyPut(policy=policy), PoliciesList, actor=admin(actor_key))

    thread = f"t-{uuid.uuid4().hex[:8]}"
    blocked = await bus.request(
        DLP_SCAN, ScanRequest(text=TEXT, thread_id=thread, assistant_id="a-hr"), ScanResult, actor=user(actor_key)
    )
    assert blocked.blocked and blocked.text == ""
    masked = await bus.request(
        DLP_SCAN,
        ScanRequest(text="Frau Anna Schmidt ruft an", thread_id=thread, assistant_id="a-hr"),
        ScanResult,
        actor=user(actor_key),
    )
    assert masked.text == "Frau A. S. ruft an"
    other = await bus.request(
        DLP_SCAN, ScanRequest(text=TEXT, thread_id=thread, assistant_id="a-other"), ScanResult, actor=user(actor_key)
    )
    assert not other.blocked and "[IBAN_1]" in other.text


async def test_unknown_entity_type_in_policy_is_rejected(env, actor_key):
    bus, _, _ = env
    bad = PolicyDoc(scope="department", scope_id="it", actions={"SHOE_SIZE": "redact"})
    with pytest.raises(BusError) as exc:
        await bus.request(DLP_POLICIES_PUT, PolicyPut(policy=bad), PoliciesList, actor=admin(actor_key))
    assert exc.value.status == 422


async def test_placeholders_numbered_by_another_replica_are_respected(env, actor_key):
    bus, _, mappings = env
    thread = f"t-{uuid.uuid4().hex[:8]}"
    await bus.request(DLP_SCAN, ScanRequest(text=TEXT, thread_id=thread), ScanResult, actor=user(actor_key))
    # another replica adds PERSON_2 behind this replica's cache
    await mappings.add(thread, {"[PERSON_2]": ("PERSON", "Clara Vogel")})
    res = await bus.request(
        DLP_SCAN, ScanRequest(text="Frau Petra Lang kommt", thread_id=thread), ScanResult, actor=user(actor_key)
    )
    assert res.text == "Frau [PERSON_3] kommt"
    restored = await bus.request(
        DLP_RESTORE, RestoreRequest(text="[PERSON_1], [PERSON_2], [PERSON_3]", thread_id=thread), RestoreResult
    )
    assert restored.text == "Jonas Becker, Clara Vogel, Petra Lang"
