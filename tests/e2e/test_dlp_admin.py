"""DLP policies through the gateway, all services as real processes.

An admin gives a department a policy that blocks IBANs and allow-lists a public official: that department's
IBAN prompt is refused naming the entity type, the official's name reaches the provider unchanged, while
another department still gets both redacted. Only admins manage policies; every change is audited.
"""

from __future__ import annotations

import random
import string
import time
import uuid

import openai
import psycopg
import pytest
from faker import Faker

from schleuse_common.devrun import Platform
from tests.e2e.helpers import api, user_key
from tests.e2e.upstream import RecordingUpstream

pytestmark = pytest.mark.e2e
fake = Faker("de_DE")
OFFICIAL = "Katrin Lehmann"  # synthetic; the detector finds it as PERSON without the allow-list
POLICIES = "/api/admin/dlp/policies"


def _chat(platform: Platform, key: str, content: str) -> str:
    client = openai.OpenAI(base_url=f"{platform.url}/v1", api_key=key, max_retries=0, timeout=30)
    answer = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": content}], max_tokens=50
    )
    return answer.choices[0].message.content or ""


def _marker() -> str:
    """A word no detector takes for personal data (random hex can look like a token or an id)."""
    return "vorgang" + "".join(random.choices(string.ascii_lowercase, k=12))


def _sent_with(upstream: RecordingUpstream, marker: str) -> str:
    """The request body the provider received for the prompt carrying `marker`."""
    bodies = [b.decode("utf-8", errors="replace") for b in upstream.bodies]
    found = [b for b in bodies if marker in b]
    assert found, "the prompt never reached the provider"
    return found[-1]


def _audited(database_url: str, subject: str, target_id: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + 15
    rows: list[tuple[object, ...]] = []
    while time.monotonic() < deadline:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT entry FROM governance.audit_log WHERE subject = %s AND entry::text LIKE %s",
                (subject, f"%{target_id}%"),
            ).fetchall()
        if rows:
            break
        time.sleep(0.1)
    return [row[0] for row in rows]  # type: ignore[misc]


def test_department_policy_blocks_ibans_and_keeps_allow_listed_terms(
    platform: Platform, upstream: RecordingUpstream, admin_key: str, database_url: str
) -> None:
    department = f"Kasse-{uuid.uuid4().hex[:6]}"
    kasse_key = user_key(database_url, ["user"], department)
    other_key = user_key(database_url, ["user"], f"Vertrieb-{uuid.uuid4().hex[:6]}")
    policy = {"actions": {"IBAN": "block", "SECRET": "block"}, "allow_terms": [OFFICIAL]}
    r = api(platform, admin_key, "PUT", f"{POLICIES}/department/{department}", policy)
    assert r.status_code == 200, r.text
    try:
        assert r.json()["scope"] == "department" and r.json()["actions"]["IBAN"] == "block"
        listing = api(platform, admin_key, "GET", POLICIES).json()["policies"]
        assert any(p["scope_id"] == department and p["allow_terms"] == [OFFICIAL] for p in listing)

        iban = fake.iban()
        with pytest.raises(openai.UnprocessableEntityError) as info:
            _chat(platform, kasse_key, f"Bitte überweise 100 Euro auf {iban}.")
        assert info.value.code == "dlp_blocked" and "IBAN" in info.value.message
        assert iban not in upstream.seen()

        marker = _marker()
        _chat(platform, kasse_key, f"Lade Bürgermeisterin {OFFICIAL} zur Eröffnung ein. {marker}")
        assert OFFICIAL in _sent_with(upstream, marker)  # allow-listed: not redacted

        # another department keeps the default policy: the same texts are redacted, not refused
        marker = _marker()
        _chat(platform, other_key, f"Lade Bürgermeisterin {OFFICIAL} ein, IBAN {iban}. {marker}")
        sent = _sent_with(upstream, marker)
        assert OFFICIAL not in sent and "[PERSON_" in sent and iban not in sent and "[IBAN_" in sent

        entries = _audited(database_url, "audit.dlp.policy_put", department)
        assert entries and OFFICIAL not in str(entries)  # allow-list terms are counted, never named
    finally:
        r = api(platform, admin_key, "DELETE", f"{POLICIES}/department/{department}")
        assert r.status_code == 200, r.text
    assert api(platform, admin_key, "DELETE", f"{POLICIES}/department/{department}").status_code == 404
    with pytest.raises(openai.UnprocessableEntityError):  # the default still blocks secrets, not IBANs
        _chat(platform, kasse_key, "Mein Schlüssel: sk-proj-" + "a1B2c3D4e5F6g7H8i9J0" * 3)
    assert _chat(platform, kasse_key, f"Bitte überweise 100 Euro auf {fake.iban()}.")


def test_only_admins_manage_dlp_policies_and_fail_open_is_audited(
    platform: Platform, admin_key: str, database_url: str
) -> None:
    assistant = f"a-{uuid.uuid4().hex[:8]}"
    path = f"{POLICIES}/assistant/{assistant}"
    for roles in (["user"], ["user", "dpo"], ["steward"]):
        key = user_key(database_url, roles, "Recht")
        assert api(platform, key, "GET", POLICIES).status_code == 403
        r = api(platform, key, "PUT", path, {"fail_open": True})
        assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
        assert api(platform, key, "DELETE", path).status_code == 403
    bad = api(platform, admin_key, "PUT", path, {"actions": {"SHOE_SIZE": "redact"}})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_policy"
    r = api(platform, admin_key, "PUT", path, {"fail_open": True})
    assert r.status_code == 200, r.text
    try:
        assert r.json()["fail_open"] is True
        entries = _audited(database_url, "audit.dlp.policy_put", assistant)
        assert entries and "fail_open_changed" in str(entries)
    finally:
        assert api(platform, admin_key, "DELETE", path).status_code == 200
    assert _audited(database_url, "audit.dlp.policy_delete", assistant)
