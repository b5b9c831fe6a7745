"""Local accounts, sessions, CSRF, lockout, idle timeout, API keys, rate limits and audit — on the real stack."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import orjson
import pytest
import pytest_asyncio
import sqlalchemy as sa
from nats.aio.msg import Msg

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus
from schleuse_common.ids import utcnow
from schleuse_gateway import store
from schleuse_gateway.admin import bootstrap

from .conftest import Admin, Gateway, GatewayFactory, make_user

pytestmark = pytest.mark.asyncio(loop_scope="session")


class AuditTap:
    """Collects `audit.>` messages as they are stored (core subscription on the stream's subjects)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    async def on(self, msg: Msg) -> None:
        self.events.append((msg.subject, orjson.loads(msg.data)))

    async def wait_for(self, subject: str, target_id: str | None = None, timeout: float = 3.0) -> dict:
        for _ in range(int(timeout / 0.05)):
            for s, env in self.events:
                if s == subject and (target_id is None or env["data"]["target_id"] == target_id):
                    return env
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {subject} for {target_id}; saw {[s for s, _ in self.events]}")


@pytest_asyncio.fixture(loop_scope="session")
async def audit(bus: Bus) -> AsyncIterator[AuditTap]:
    tap = AuditTap()
    sub = await bus.nc.subscribe("audit.>", cb=tap.on)
    yield tap
    await sub.unsubscribe()


async def login(gw: Gateway, client, name: str, password: str):  # type: ignore[no-untyped-def]
    return await client.post("/api/auth/login", json={"login": name, "password": password})


async def test_bootstrap_shows_password_once_and_it_logs_in(gateway: Gateway) -> None:
    name = f"first-{secrets.token_hex(3)}"
    key, password = await bootstrap(gateway.settings, name, "IT")
    again_key, again_password = await bootstrap(gateway.settings, name, "IT")
    assert password is not None and len(password) >= 12
    assert again_password is None and again_key != key
    async with gateway.client() as c:
        r = await login(gateway, c, name, password)
        assert r.status_code == 200, r.text
        assert "admin" in r.json()["roles"]
        me = await c.get("/api/auth/me", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200 and me.json()["id"] == r.json()["id"]


async def test_login_sets_session_cookies_and_csrf_guards_changes(gateway: Gateway, admin: Admin) -> None:
    async with gateway.client() as c:
        r = await login(gateway, c, admin.login, admin.password)
        assert r.status_code == 200
        cookies = r.headers.get_list("set-cookie")
        session_cookie = next(h for h in cookies if h.startswith("schleuse_session="))
        csrf_cookie = next(h for h in cookies if h.startswith("schleuse_csrf="))
        assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie
        assert "Secure" not in session_cookie  # plain http in this test
        assert "HttpOnly" not in csrf_cookie
        csrf = r.json()["csrf_token"]
        assert (await c.get("/api/auth/me")).status_code == 200  # safe method: no CSRF token needed
        body = {"name": "from-session", "scopes": ["chat"]}
        no_token = await c.post("/api/keys", json=body)
        wrong = await c.post("/api/keys", json=body, headers={"X-CSRF-Token": "nope"})
        right = await c.post("/api/keys", json=body, headers={"X-CSRF-Token": csrf})
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["detail"]
    assert wrong.status_code == 403
    assert right.status_code == 201


async def test_wrong_password_and_unknown_login_look_the_same(gateway: Gateway, admin: Admin) -> None:
    user = await make_user(gateway, admin.key, roles=["user"])
    async with gateway.client() as c:
        wrong = await login(gateway, c, user["login"], "x" * 14)
        unknown = await login(gateway, c, f"nobody-{secrets.token_hex(3)}", "x" * 14)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_lockout_after_five_failures_and_admin_unlock(gateway: Gateway, admin: Admin, audit: AuditTap) -> None:
    user = await make_user(gateway, admin.key, roles=["user"])
    async with gateway.client() as c:
        for _ in range(4):
            assert (await login(gateway, c, user["login"], "wrong-password-123")).status_code == 401
        fifth = await login(gateway, c, user["login"], "wrong-password-123")
        locked = await login(gateway, c, user["login"], user["password"])
        assert fifth.status_code == 401
        assert locked.status_code == 423 and int(locked.headers["retry-after"]) > 0
        event = await audit.wait_for("audit.identity.lockout", user["id"])
        assert user["login"] not in orjson.dumps(event).decode()  # pseudonymous: no login name in audit
        r = await c.post(f"/api/admin/users/{user['id']}/unlock", headers={"Authorization": f"Bearer {admin.key}"})
        assert r.status_code == 200 and r.json()["locked"] is False
        assert (await login(gateway, c, user["login"], user["password"])).status_code == 200


async def test_success_resets_the_failure_count(gateway: Gateway, admin: Admin) -> None:
    user = await make_user(gateway, admin.key, roles=["user"])
    async with gateway.client() as c:
        for _ in range(4):
            await login(gateway, c, user["login"], "wrong-password-123")
        assert (await login(gateway, c, user["login"], user["password"])).status_code == 200
        for _ in range(4):
            await login(gateway, c, user["login"], "wrong-password-123")
        assert (await login(gateway, c, user["login"], user["password"])).status_code == 200


async def test_password_policy_minimum_length(gateway: Gateway, admin: Admin) -> None:
    headers = {"Authorization": f"Bearer {admin.key}"}
    async with gateway.client() as c:
        short = await c.post(
            "/api/admin/users", json={"login_name": "shorty", "password": "elevenchars"}, headers=headers
        )
        ok = await c.post(
            "/api/admin/users",
            json={"login_name": f"longer-{secrets.token_hex(3)}", "password": "twelve chars"},
            headers=headers,
        )
    assert short.status_code == 422
    assert ok.status_code == 201 and ok.json()["password"] is None


async def test_own_password_change_ends_other_sessions(gateway: Gateway, admin: Admin) -> None:
    user = await make_user(gateway, admin.key, roles=["user"])
    async with gateway.client() as a, gateway.client() as b:
        csrf = (await login(gateway, a, user["login"], user["password"])).json()["csrf_token"]
        await login(gateway, b, user["login"], user["password"])
        new = "a much longer passphrase"
        r = await a.post(
            "/api/auth/password",
            json={"current_password": user["password"], "new_password": new},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 204
        assert (await a.get("/api/auth/me")).status_code == 200  # the changing session got a new cookie
        assert (await b.get("/api/auth/me")).status_code == 401
        assert (await login(gateway, b, user["login"], new)).status_code == 200


async def test_idle_timeout_ends_the_session(gateway_factory: GatewayFactory, admin: Admin) -> None:
    gw = await gateway_factory(session_idle_seconds=1.0)
    async with gw.client() as c:
        assert (await login(gw, c, admin.login, admin.password)).status_code == 200
        for _ in range(3):  # activity keeps it alive past the idle timeout
            await asyncio.sleep(0.5)
            assert (await c.get("/api/auth/me")).status_code == 200
        await asyncio.sleep(1.5)
        r = await c.get("/api/auth/me")
    assert r.status_code == 401


async def test_logout_and_refresh(gateway: Gateway, admin: Admin, audit: AuditTap) -> None:
    async with gateway.client() as c:
        first = await login(gateway, c, admin.login, admin.password)
        old_cookie = c.cookies.get("schleuse_session")
        r = await c.post("/api/auth/refresh", headers={"X-CSRF-Token": first.json()["csrf_token"]})
        assert r.status_code == 200
        assert c.cookies.get("schleuse_session") != old_cookie
        assert r.json()["csrf_token"] != first.json()["csrf_token"]
        async with gateway.client(cookies={"schleuse_session": old_cookie}) as stale:
            assert (await stale.get("/api/auth/me")).status_code == 401
        out = await c.post("/api/auth/logout", headers={"X-CSRF-Token": r.json()["csrf_token"]})
        assert out.status_code == 200 and out.json()["logged_out"] is True
        await audit.wait_for("audit.identity.logout", first.json()["id"])
        assert (await c.get("/api/auth/me")).status_code == 401


async def test_secure_cookies_and_hsts_over_tls(gateway_factory: GatewayFactory, admin: Admin) -> None:
    gw = await gateway_factory(public_url="https://schleuse.example", frame_ancestors="https://intranet.example")
    async with gw.client() as c:
        r = await login(gw, c, admin.login, admin.password)
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("schleuse_session="))
    assert "Secure" in cookie
    assert r.headers["strict-transport-security"].startswith("max-age=")
    assert "frame-ancestors https://intranet.example" in r.headers["content-security-policy"]
    assert "x-frame-options" not in r.headers


async def test_security_headers_over_plain_http(gateway: Gateway) -> None:
    async with gateway.client() as c:
        r = await c.get("/healthz")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in r.headers


# -- API keys ------------------------------------------------------------------------------


async def test_key_is_shown_once_hashed_and_listed_by_prefix(gateway: Gateway, admin: Admin, audit: AuditTap) -> None:
    user = await make_user(gateway, admin.key, roles=["user"])
    headers = {"Authorization": f"Bearer {user['key']}"}
    async with gateway.client() as c:
        created = await c.post("/api/keys", json={"name": "sdk", "scopes": ["chat"]}, headers=headers)
        listed = await c.get("/api/keys", headers=headers)
    secret = created.json()["key"]
    assert created.status_code == 201 and secret.startswith(created.json()["prefix"])
    assert secret not in listed.text and created.json()["prefix"] in listed.text
    async with gateway.rt.db.session() as session:  # type: ignore[union-attr]
        stored = (
            await session.execute(sa.select(store.api_keys).where(store.api_keys.c.id == created.json()["id"]))
        ).one()
    assert secret not in str(tuple(stored))
    event = await audit.wait_for("audit.keys.created", created.json()["id"])
    assert secret not in orjson.dumps(event).decode()
    assert Actor.model_validate(event["actor"]).verify(gateway.rt.actor_key)


async def test_scopes_limit_what_a_key_may_do(gateway: Gateway, admin: Admin) -> None:
    user = await make_user(gateway, admin.key, roles=["user"], scopes=["keys:read"])
    headers = {"Authorization": f"Bearer {user['key']}"}
    async with gateway.client() as c:
        read = await c.get("/api/keys", headers=headers)
        write = await c.post("/api/keys", json={"name": "x", "scopes": ["chat"]}, headers=headers)
        chat = await c.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            headers=headers,
        )
    assert read.status_code == 200
    assert write.status_code == 403 and "keys:write" in write.json()["detail"]
    assert chat.status_code == 403 and chat.json()["error"]["type"] == "permission_error"


async def test_a_key_cannot_mint_a_stronger_key(gateway: Gateway, admin: Admin) -> None:
    user = await make_user(gateway, admin.key, roles=["user"], scopes=["keys", "chat"])
    headers = {"Authorization": f"Bearer {user['key']}"}
    async with gateway.client() as c:
        wider = await c.post("/api/keys", json={"name": "x", "scopes": ["*"]}, headers=headers)
        other = await c.post("/api/keys", json={"name": "x", "scopes": ["admin"]}, headers=headers)
        same = await c.post("/api/keys", json={"name": "x", "scopes": ["chat"]}, headers=headers)
    assert wider.status_code == 403 and other.status_code == 403
    assert same.status_code == 201


async def test_allowed_assistants_restrict_v1(gateway: Gateway, admin: Admin) -> None:
    user = await make_user(gateway, admin.key, roles=["user"])
    async with gateway.client() as c:
        r = await c.post(
            "/api/keys",
            json={"name": "one", "scopes": ["chat"], "allowed_assistants": ["a1"]},
            headers={"Authorization": f"Bearer {user['key']}"},
        )
        headers = {"Authorization": f"Bearer {r.json()['key']}"}
        msgs = [{"role": "user", "content": "hi"}]
        other = await c.post("/v1/chat/completions", json={"model": "assistant:a2", "messages": msgs}, headers=headers)
        raw = await c.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": msgs}, headers=headers)
        allowed = await c.post(
            "/v1/chat/completions", json={"model": "assistant:a1", "messages": msgs}, headers=headers
        )
    assert other.status_code == 403 and raw.status_code == 403
    assert allowed.status_code not in (401, 403) or allowed.json()["error"]["code"] == "actor_forged", allowed.text


async def test_expired_key_is_refused(gateway: Gateway, admin: Admin) -> None:
    user = await make_user(gateway, admin.key, roles=["user"])
    async with gateway.client() as c:
        past = await c.post(
            "/api/keys",
            json={"name": "old", "expires_at": (utcnow() - timedelta(days=1)).isoformat()},
            headers={"Authorization": f"Bearer {user['key']}"},
        )
        r = await c.post(
            "/api/keys", json={"name": "soon", "expires_in_days": 1}, headers={"Authorization": f"Bearer {user['key']}"}
        )
        async with gateway.rt.db.session() as session:  # type: ignore[union-attr]
            await session.execute(
                store.api_keys.update()
                .where(store.api_keys.c.id == r.json()["id"])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        expired = await c.get("/api/auth/me", headers={"Authorization": f"Bearer {r.json()['key']}"})
    assert past.status_code == 422
    assert expired.status_code == 401


async def test_revocation_is_immediate_on_every_replica(
    gateway_factory: GatewayFactory, admin: Admin, audit: AuditTap
) -> None:
    a = await gateway_factory(api_key_cache_seconds=300)
    b = await gateway_factory(api_key_cache_seconds=300)
    user = await make_user(a, admin.key, roles=["user"])
    headers = {"Authorization": f"Bearer {user['key']}"}
    async with a.client() as ca, b.client() as cb:
        assert (await ca.get("/api/auth/me", headers=headers)).status_code == 200
        assert (await cb.get("/api/auth/me", headers=headers)).status_code == 200  # now cached on b for 300 s
        key_id = (await ca.get("/api/keys", headers=headers)).json()[0]["id"]
        r = await ca.delete(f"/api/keys/{key_id}", headers=headers)
        assert r.status_code == 200 and r.json()["revoked_at"] is not None
        assert (await ca.get("/api/auth/me", headers=headers)).status_code == 401
        status = 200
        for _ in range(40):  # the announcement travels over NATS to b
            status = (await cb.get("/api/auth/me", headers=headers)).status_code
            if status == 401:
                break
            await asyncio.sleep(0.05)
    assert status == 401
    await audit.wait_for("audit.keys.revoked", key_id)


async def test_a_user_cannot_revoke_someone_elses_key(gateway: Gateway, admin: Admin) -> None:
    one = await make_user(gateway, admin.key, roles=["user"])
    two = await make_user(gateway, admin.key, roles=["user"])
    async with gateway.client() as c:
        key_id = (await c.get("/api/keys", headers={"Authorization": f"Bearer {one['key']}"})).json()[0]["id"]
        r = await c.delete(f"/api/keys/{key_id}", headers={"Authorization": f"Bearer {two['key']}"})
        still = await c.get("/api/auth/me", headers={"Authorization": f"Bearer {one['key']}"})
    assert r.status_code == 404 and still.status_code == 200


# -- rate limits ---------------------------------------------------------------------------


async def test_rate_limit_per_key_answers_429_with_retry_after(
    gateway: Gateway, gateway_factory: GatewayFactory, admin: Admin
) -> None:
    gw = await gateway_factory(rate_limit_key=3, rate_limit_user=1000)
    user = await make_user(gateway, admin.key, roles=["user"])  # made through the unlimited instance
    headers = {"Authorization": f"Bearer {user['key']}"}
    async with gw.client() as c:
        statuses = [(await c.get("/api/auth/me", headers=headers)).status_code for _ in range(3)]
        api = await c.get("/api/auth/me", headers=headers)
        v1 = await c.get("/v1/models", headers=headers)
    assert statuses == [200, 200, 200]
    assert api.status_code == 429 and 1 <= int(api.headers["retry-after"]) <= 120
    assert v1.status_code == 429 and v1.json()["error"]["type"] == "rate_limit_error" and "retry-after" in v1.headers


async def test_rate_limit_per_user_spans_their_keys_and_sessions(
    gateway: Gateway, gateway_factory: GatewayFactory, admin: Admin
) -> None:
    gw = await gateway_factory(rate_limit_key=1000, rate_limit_user=4)
    user = await make_user(gateway, admin.key, roles=["user"])
    async with gw.client() as c:
        second = (
            await c.post(
                "/api/keys", json={"name": "two", "scopes": ["*"]}, headers={"Authorization": f"Bearer {user['key']}"}
            )
        ).json()["key"]
        assert (await login(gw, c, user["login"], user["password"])).status_code == 200
        results = [
            (await c.get("/api/auth/me", headers={"Authorization": f"Bearer {k}"})).status_code
            for k in (user["key"], second, user["key"])
        ]
        via_session = await c.get("/api/auth/me")
    assert results == [200, 200, 200]  # 1 (key creation) + 3 = 4
    assert via_session.status_code == 429


# -- admin API -----------------------------------------------------------------------------


async def test_admin_manages_departments_roles_and_deactivation(
    gateway: Gateway, admin: Admin, audit: AuditTap
) -> None:
    headers = {"Authorization": f"Bearer {admin.key}"}
    dept = f"Dept-{secrets.token_hex(3)}"
    user = await make_user(gateway, admin.key, roles=["user"])
    async with gateway.client() as c, gateway.client() as browser:
        assert (
            await c.post("/api/admin/departments", json={"id": dept, "name": "Einkauf"}, headers=headers)
        ).status_code == 201
        assert (await c.post("/api/admin/departments", json={"id": dept}, headers=headers)).status_code == 409
        assert (await login(gateway, browser, user["login"], user["password"])).status_code == 200
        r = await c.patch(
            f"/api/admin/users/{user['id']}", json={"roles": ["user", "steward"], "department": dept}, headers=headers
        )
        assert r.status_code == 200 and r.json()["roles"] == ["steward", "user"] and r.json()["department"] == dept
        await audit.wait_for("audit.users.updated", user["id"])
        assert (await browser.get("/api/auth/me")).status_code == 401  # role change ends sessions
        me = await c.get("/api/auth/me", headers={"Authorization": f"Bearer {user['key']}"})
        assert me.json()["roles"] == ["steward", "user"] and me.json()["department"] == dept
        listed = await c.get("/api/admin/users", params={"department": dept}, headers=headers)
        assert [u["id"] for u in listed.json()] == [user["id"]]
        depts = {d["id"]: d for d in (await c.get("/api/admin/departments", headers=headers)).json()}
        assert depts[dept]["members"] == 1
        unknown = await c.patch(f"/api/admin/users/{user['id']}", json={"department": "nope-x"}, headers=headers)
        assert unknown.status_code == 422
        off = await c.patch(f"/api/admin/users/{user['id']}", json={"active": False}, headers=headers)
        assert off.status_code == 200 and off.json()["active"] is False
        assert (await c.get("/api/auth/me", headers={"Authorization": f"Bearer {user['key']}"})).status_code == 401
        assert (await login(gateway, browser, user["login"], user["password"])).status_code == 401
        assert (await c.delete(f"/api/admin/departments/{dept}", headers=headers)).status_code == 204
        await audit.wait_for("audit.departments.deleted", dept)


async def test_admin_cannot_demote_themselves(gateway: Gateway, admin: Admin) -> None:
    headers = {"Authorization": f"Bearer {admin.key}"}
    async with gateway.client() as c:
        me = (await c.get("/api/auth/me", headers=headers)).json()
        r = await c.patch(f"/api/admin/users/{me['id']}", json={"roles": ["user"]}, headers=headers)
    assert r.status_code == 409


async def test_admin_issues_integration_key_for_a_department(gateway: Gateway, admin: Admin) -> None:
    headers = {"Authorization": f"Bearer {admin.key}"}
    async with gateway.client() as c:
        r = await c.post(
            "/api/admin/keys",
            json={"name": "Telefonanlage", "department": "Kundenservice", "roles": ["agent"], "scopes": ["calls"]},
            headers=headers,
        )
        assert r.status_code == 201
        me = await c.get("/api/auth/me", headers={"Authorization": f"Bearer {r.json()['key']}"})
        assert me.status_code == 403  # scope `calls` does not cover /api/auth
        listed = await c.get("/api/admin/keys", params={"user_id": r.json()["user_id"]}, headers=headers)
        revoked = await c.delete(f"/api/admin/keys/{r.json()['id']}", headers=headers)
        user = await c.get(f"/api/admin/users/{r.json()['user_id']}", headers=headers)
    assert [k["id"] for k in listed.json()] == [r.json()["id"]]
    assert revoked.status_code == 200
    assert user.json()["kind"] == "service" and user.json()["department"] == "Kundenservice"
    assert user.json()["roles"] == ["agent"]


async def test_admin_password_reset_shows_a_new_password_once(gateway: Gateway, admin: Admin, audit: AuditTap) -> None:
    user = await make_user(gateway, admin.key, roles=["user"])
    async with gateway.client() as c:
        r = await c.post(f"/api/admin/users/{user['id']}/password", headers={"Authorization": f"Bearer {admin.key}"})
        assert r.status_code == 200
        assert (await login(gateway, c, user["login"], user["password"])).status_code == 401
        assert (await login(gateway, c, user["login"], r.json()["password"])).status_code == 200
    await audit.wait_for("audit.users.password_reset", user["id"])
