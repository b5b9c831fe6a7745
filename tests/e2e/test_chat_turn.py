"""One chat turn across every hot-path service, through the official OpenAI SDK."""

from __future__ import annotations

import time

import httpx
import openai
import psycopg
import pytest
from faker import Faker

from schleuse_common.devrun import Platform
from tests.e2e.helpers import user_key
from tests.e2e.upstream import RecordingUpstream

pytestmark = pytest.mark.e2e
fake = Faker("de_DE")


def _client(platform: Platform, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{platform.url}/v1", api_key=key, max_retries=0, timeout=30)


def _wait_rows(database_url: str, sql: str, params: tuple[object, ...], want: int = 1) -> list[tuple[object, ...]]:
    deadline = time.monotonic() + 15
    rows: list[tuple[object, ...]] = []
    while time.monotonic() < deadline:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(sql, params).fetchall()
        if len(rows) >= want:
            return rows
        time.sleep(0.1)
    return rows


def test_non_streaming_turn_redacts_before_egress(
    platform: Platform, upstream: RecordingUpstream, admin_key: str, database_url: str
) -> None:
    email = fake.email()
    phone = "+49 30 " + fake.numerify("#######")
    prompt = f"[[demo:echo]] Bitte antworte {fake.name()} unter {email} oder {phone}."
    resp = _client(platform, admin_key).chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": prompt}]
    )
    completion = resp.parse()
    answer = completion.choices[0].message.content or ""
    # The demo upstream echoes what it received: the user sees originals restored ...
    assert email in answer and phone in answer
    # ... while the upstream itself only ever saw placeholders.
    seen = upstream.seen()
    assert "Bitte antworte" in seen  # the request did reach the upstream
    assert email not in seen and "[EMAIL_" in seen
    assert phone not in seen and "[PHONE_" in seen
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert resp.headers.get("x-schleuse-demo-provider", "").startswith("true")
    # Usage arrives in analytics; the chat schema holds no clear text.
    usage = _wait_rows(database_url, "SELECT total_tokens FROM analytics.usage_events WHERE status = 'ok'", ())
    assert usage and int(usage[0][0]) > 0
    rows = _wait_rows(database_url, "SELECT content_ct FROM chat.messages", ())
    assert rows
    dump = _wait_rows(database_url, "SELECT string_agg(m::text, ' ') FROM chat.messages m", ())
    assert email not in str(dump) and "Bitte antworte" not in str(dump)


def test_streaming_turn_yields_openai_chunks(platform: Platform, admin_key: str) -> None:
    stream = _client(platform, admin_key).chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "[[demo:long=40]] Erzähl mir etwas über Kanalschleusen."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas: list[str] = []
    finish = None
    usage = None
    for chunk in stream:
        if chunk.choices:
            deltas.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert any(deltas)  # (chunks that arrive together may be merged on the way, so their number varies)
    assert len("".join(deltas).split()) >= 40
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


def test_wrong_api_key_gets_openai_401(platform: Platform) -> None:
    with pytest.raises(openai.AuthenticationError) as err:
        _client(platform, "sk-sl-" + "x" * 40).chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Hallo"}]
        )
    assert err.value.status_code == 401
    assert err.value.body and "message" in err.value.body  # type: ignore[operator]


def test_malformed_body_gets_clear_400(platform: Platform, admin_key: str) -> None:
    r = httpx.post(
        f"{platform.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {admin_key}"},
        json={"model": "default", "messages": "not a list"},
    )
    assert r.status_code == 400
    assert "messages" in r.json()["error"]["message"]
    r = httpx.post(
        f"{platform.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert r.status_code == 400


def test_upstream_failure_is_502_and_nothing_half_written(platform: Platform, database_url: str) -> None:
    key = user_key(database_url, ["user"], "Recht")  # a fresh person: whatever chat keeps of them is from here
    with pytest.raises(openai.APIStatusError) as err:
        _client(platform, key).chat.completions.create(
            model="default", messages=[{"role": "user", "content": "[[demo:fail500]] Hallo"}]
        )
    assert err.value.status_code == 502
    time.sleep(1.0)  # a record, had one been published, would be persisted by now
    owner = "SELECT user_id FROM gateway.api_keys WHERE prefix = %s"
    for table in ("chat.messages", "chat.threads"):
        rows = _wait_rows(database_url, f"SELECT count(*) FROM {table} WHERE owner_id = ({owner})", (key[:12],))
        assert rows[0][0] == 0, table


def test_models_lists_what_the_caller_may_use(platform: Platform, admin_key: str) -> None:
    models = _client(platform, admin_key).models.list()
    assert [m.id for m in models.data]
