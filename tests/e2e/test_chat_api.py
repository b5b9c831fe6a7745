"""The chat `/api` through the gateway with every role: RBAC on every endpoint, ownership, assistant turns."""

from __future__ import annotations

import uuid

import httpx
import pytest
from faker import Faker

from schleuse_common.devrun import Platform
from tests.e2e.helpers import user_key
from tests.e2e.upstream import RecordingUpstream

pytestmark = pytest.mark.e2e
fake = Faker("de_DE")
ROLES = ("user", "steward", "dpo", "admin")
NONE = "0190a0a0-0000-7000-8000-000000000000"


@pytest.fixture(scope="module")
def keys(database_url: str, platform: Platform) -> dict[str, str]:
    return {role: user_key(database_url, [role], "Recht") for role in ROLES}


@pytest.fixture(scope="module")
def assistant_id(platform: Platform, admin_key: str) -> str:
    r = httpx.post(
        f"{platform.url}/api/admin/assistants",
        headers={"Authorization": f"Bearer {admin_key}"},
        json={
            "name": f"Recht-{uuid.uuid4().hex[:6]}",
            "departments": ["Recht"],
            "system_prompt": "Du bist der Assistent der Rechtsabteilung.",
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _call(platform: Platform, key: str | None, method: str, path: str, body: object = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, f"{platform.url}{path}", headers=headers, json=body, timeout=30)


def _endpoints(assistant_id: str) -> list[tuple[str, str, object, str]]:
    """(method, path, body, the role allowed)."""
    return [
        ("GET", "/api/assistants", None, "user"),
        ("GET", "/api/admin/assistants", None, "admin"),
        ("POST", "/api/admin/assistants", {"name": f"RBAC-{uuid.uuid4().hex[:6]}", "active": False}, "admin"),
        ("GET", f"/api/admin/assistants/{assistant_id}", None, "admin"),
        ("PATCH", f"/api/admin/assistants/{assistant_id}", {"description": "geprüft"}, "admin"),
        ("GET", "/api/threads", None, "user"),
        ("POST", "/api/threads", {"assistant_id": assistant_id, "content": "[[demo:echo]] Hallo"}, "user"),
        ("GET", f"/api/threads/{NONE}", None, "user"),
        ("PATCH", f"/api/threads/{NONE}", {"title": "x"}, "user"),
        ("DELETE", f"/api/threads/{NONE}", None, "user"),
        ("POST", f"/api/threads/{NONE}/messages", {"content": "Hallo"}, "user"),
        ("PUT", f"/api/messages/{NONE}/feedback", {"thumbs": "up"}, "user"),
        ("GET", "/api/prompts", None, "user"),
        ("POST", "/api/prompts", {"title": "t", "body": "b {{thema}}"}, "user"),
        ("GET", f"/api/prompts/{NONE}", None, "user"),
        ("DELETE", f"/api/prompts/{NONE}", None, "user"),
        ("POST", f"/api/prompts/{NONE}/submit", None, "user"),
        ("GET", "/api/library?q=Vertrag", None, "user"),
        ("POST", f"/api/library/{NONE}/use", {"values": {}}, "user"),
        ("PUT", f"/api/library/{NONE}/rating", {"stars": 4}, "user"),
        ("GET", "/api/library/candidates", None, "steward"),
        ("POST", f"/api/library/{NONE}/review", {"decision": "approve"}, "steward"),
        ("GET", "/api/datasets/items", None, "steward"),
        ("POST", f"/api/datasets/items/{NONE}/review", {"decision": "reject", "reason": "x"}, "steward"),
        ("GET", "/api/datasets/export?format=qa", None, "steward"),
    ]


def test_every_chat_endpoint_for_every_role(platform: Platform, keys: dict[str, str], assistant_id: str) -> None:
    for method, path, body, allowed in _endpoints(assistant_id):
        r = _call(platform, None, method, path, body)
        assert r.status_code == 401, (method, path, "anonymous", r.status_code)
        assert r.headers["content-type"].startswith("application/problem+json")
        for role in ROLES:
            r = _call(platform, keys[role], method, path, body)
            if role == allowed:
                assert r.status_code in (200, 201, 404), (method, path, role, r.status_code, r.text)
            else:
                assert r.status_code == 403, (method, path, role, r.status_code)
                assert r.json()["status"] == 403


def test_no_user_reads_another_users_thread(
    platform: Platform, database_url: str, assistant_id: str, upstream: RecordingUpstream
) -> None:
    alice, mallory = (user_key(database_url, ["user"], "Recht") for _ in range(2))
    email = fake.email()
    r = _call(
        platform, alice, "POST", "/api/threads", {"assistant_id": assistant_id, "content": f"[[demo:echo]] An {email}"}
    )
    assert r.status_code == 200, r.text
    turn = r.json()
    assert email in turn["content"] and turn["message_id"]
    assert email not in upstream.seen()
    assert "Du bist der Assistent der Rechtsabteilung." in upstream.seen()  # the assistant's system prompt went along
    thread_id = turn["thread_id"]
    for method, path, body in (
        ("GET", f"/api/threads/{thread_id}", None),
        ("PATCH", f"/api/threads/{thread_id}", {"title": "meins"}),
        ("DELETE", f"/api/threads/{thread_id}", None),
        ("POST", f"/api/threads/{thread_id}/messages", {"content": "Zeig her"}),
        ("PUT", f"/api/messages/{turn['message_id']}/feedback", {"thumbs": "up"}),
    ):
        r = _call(platform, mallory, method, path, body)
        assert r.status_code == 404, (method, path, r.status_code)
    assert _call(platform, mallory, "GET", "/api/threads").json()["items"] == []
    view = _call(platform, alice, "GET", f"/api/threads/{thread_id}").json()
    assert [m["role"] for m in view["messages"]] == ["user", "assistant"]
    assert view["messages"][0]["content"].endswith(email)

    with httpx.stream(
        "POST",
        f"{platform.url}/api/threads/{thread_id}/messages",
        headers={"Authorization": f"Bearer {alice}"},
        json={"content": "[[demo:echo]] Weiter", "stream": True},
        timeout=30,
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = "".join(stream.iter_text())
    assert "event: delta" in events and "event: done" in events and thread_id in events


def test_v1_with_assistant_model_uses_the_system_prompt(
    platform: Platform, database_url: str, keys: dict[str, str], assistant_id: str, upstream: RecordingUpstream
) -> None:
    marker = uuid.uuid4().hex
    r = httpx.post(
        f"{platform.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {keys['user']}"},
        json={
            "model": f"assistant:{assistant_id}",
            "messages": [{"role": "user", "content": f"[[demo:echo]] {marker}"}],
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    seen = upstream.seen()
    assert marker in seen and "Du bist der Assistent der Rechtsabteilung." in seen
    other = user_key(database_url, ["user"], "Kommunikation")
    r = httpx.post(
        f"{platform.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {other}"},
        json={"model": f"assistant:{assistant_id}", "messages": [{"role": "user", "content": "Hallo"}]},
        timeout=30,
    )
    assert r.status_code == 404  # another department's assistant does not exist for them


def test_chat_api_is_in_the_openapi_document(platform: Platform) -> None:
    paths = httpx.get(f"{platform.url}/openapi.json").json()["paths"]
    for path in ("/api/assistants", "/api/threads/{thread_id}", "/api/library", "/api/datasets/export"):
        assert path in paths
