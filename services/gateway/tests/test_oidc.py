"""OIDC login against a real OpenID provider (node `oidc-provider`): code + PKCE, nonce, JWKS, bearer tokens."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from faker import Faker
from joserfc import jwt
from joserfc.jwk import RSAKey

from schleuse_common.auth import keyed_hash
from schleuse_gateway import store
from schleuse_gateway.identity.oidc import OidcError
from schleuse_gateway.settings import OidcSettings

from .conftest import BASE_URL, Gateway, GatewayFactory
from .oidc_provider import OidcProvider, start_provider

pytestmark = pytest.mark.asyncio(loop_scope="session")
CALLBACK = BASE_URL + "/api/auth/oidc/callback"
API_AUDIENCE = "schleuse-api"


@pytest.fixture(scope="session")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    fake = Faker("de_DE")
    accounts = {
        "anna": {"name": fake.name(), "email": fake.email(), "groups": ["schleuse-admins"], "department": "Einkauf"},
        "ben": {"name": fake.name(), "email": fake.email(), "groups": ["staff"], "department": "Vertrieb"},
    }
    p = start_provider(tmp_path_factory.mktemp("oidc"), CALLBACK, accounts)
    yield p
    p.stop()


def oidc_settings(provider: OidcProvider, **overrides: Any) -> OidcSettings:
    values: dict[str, Any] = {
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "scopes": ["openid", "profile", "email", "schleuse"],
        "api_audiences": [API_AUDIENCE],
        "role_claim": "groups",
        "role_map": {"schleuse-admins": ["admin", "user"], "staff": ["user"]},
        "department_claim": "department",
        **overrides,
    }
    return OidcSettings(**values)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def oidc_gateway(gateway_factory: GatewayFactory, provider: OidcProvider) -> Gateway:
    return await gateway_factory(oidc=oidc_settings(provider))


@pytest_asyncio.fixture(loop_scope="session")
async def browser(provider: OidcProvider) -> AsyncIterator[httpx.AsyncClient]:
    """The browser's side at the provider (real HTTP, its own cookies)."""
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


async def start_login(gw_client: httpx.AsyncClient, browser: httpx.AsyncClient, account: str) -> str:
    """Run the redirect dance up to the provider's answer; returns the callback URL (with code and state)."""
    r = await gw_client.get("/api/auth/oidc/login", params={"login_hint": account, "return_to": "/chat"})
    assert r.status_code == 302, r.text
    location = r.headers["location"]
    for _ in range(10):
        if location.startswith(BASE_URL):
            return location
        r = await browser.get(location)
        assert r.status_code in (302, 303), r.text
        location = str(httpx.URL(location).join(r.headers["location"]))
    raise AssertionError("the provider never redirected back")


async def login(gw: Gateway, client: httpx.AsyncClient, browser: httpx.AsyncClient, account: str) -> httpx.Response:
    callback = await start_login(client, browser, account)
    return await client.get(callback.removeprefix(BASE_URL))


def forge(key: RSAKey, claims: dict[str, Any], kid: str | None = None) -> str:
    header = {"alg": "RS256", "kid": kid or str(key.kid)}
    return jwt.encode(header, claims, key)


def claims_for(provider: OidcProvider, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": provider.issuer,
        "sub": "ben",
        "aud": provider.client_id,
        "iat": now,
        "exp": now + 300,
        "groups": ["staff"],
        "department": "Vertrieb",
        **overrides,
    }


async def test_login_creates_a_pseudonymous_user_with_mapped_roles(
    oidc_gateway: Gateway, browser: httpx.AsyncClient, provider: OidcProvider
) -> None:
    async with oidc_gateway.client() as c:
        r = await login(oidc_gateway, c, browser, "anna")
        assert r.status_code == 303 and r.headers["location"] == "/chat"
        assert "HttpOnly" in next(h for h in r.headers.get_list("set-cookie") if h.startswith("schleuse_session="))
        me = (await c.get("/api/auth/me")).json()
    assert me["roles"] == ["admin", "user"] and me["department"] == "Einkauf" and me["method"] == "session"
    async with oidc_gateway.rt.db.session() as session:  # type: ignore[union-attr]
        user = await store.user_by_subject(session, keyed_hash(oidc_gateway.rt.actor_key, provider.issuer, "anna"))
    assert user is not None and user.id == me["id"] and user.kind == "oidc"
    assert user.display_name is None and user.email is None  # not configured to keep them


async def test_replayed_callback_is_refused(oidc_gateway: Gateway, browser: httpx.AsyncClient) -> None:
    async with oidc_gateway.client() as c:
        callback = (await start_login(c, browser, "ben")).removeprefix(BASE_URL)
        first = await c.get(callback)
        again = await c.get(callback)
    assert first.status_code == 303
    assert again.status_code == 400


async def test_nonce_is_checked_and_single_use(oidc_gateway: Gateway, browser: httpx.AsyncClient) -> None:
    async with oidc_gateway.client() as c:
        await login(oidc_gateway, c, browser, "ben")
        session = await oidc_gateway.identity.sessions.touch(c.cookies["schleuse_session"])
    assert session is not None and session.id_token is not None
    oidc = oidc_gateway.identity.oidc
    assert oidc is not None
    nonce = jwt.decode(session.id_token, await oidc.key_set()).claims["nonce"]
    audiences = [oidc.config.client_id]
    with pytest.raises(OidcError):
        await oidc.verify(session.id_token, audiences=audiences, nonce="another-login's-nonce")
    claims = await oidc.verify(session.id_token, audiences=audiences, nonce=nonce)
    with pytest.raises(OidcError, match="replayed nonce"):
        await oidc.use_nonce(nonce, int(claims["exp"]))


async def test_provider_id_token_works_as_bearer_on_the_api(oidc_gateway: Gateway, browser: httpx.AsyncClient) -> None:
    async with oidc_gateway.client() as c:
        await login(oidc_gateway, c, browser, "ben")
        session = await oidc_gateway.identity.sessions.touch(c.cookies["schleuse_session"])
    assert session is not None and session.id_token
    async with oidc_gateway.client() as api:
        r = await api.get("/api/auth/me", headers={"Authorization": f"Bearer {session.id_token}"})
        admin = await api.get("/api/admin/users", headers={"Authorization": f"Bearer {session.id_token}"})
    assert r.status_code == 200 and r.json()["method"] == "bearer_token" and r.json()["roles"] == ["user"]
    assert admin.status_code == 403


@pytest.mark.parametrize(
    "case",
    ["wrong_issuer", "wrong_audience", "expired", "bad_signature", "unknown_kid", "no_signature_alg_none"],
)
async def test_forged_or_stale_tokens_are_refused(oidc_gateway: Gateway, provider: OidcProvider, case: str) -> None:
    key = provider.signing_key
    other = RSAKey.generate_key(2048, parameters={"kid": str(key.kid)})
    now = int(time.time())
    token = {
        "wrong_issuer": lambda: forge(key, claims_for(provider, iss="http://127.0.0.1:1/evil")),
        "wrong_audience": lambda: forge(key, claims_for(provider, aud="some-other-client")),
        "expired": lambda: forge(key, claims_for(provider, iat=now - 7200, exp=now - 3600)),
        "bad_signature": lambda: forge(other, claims_for(provider)),
        "unknown_kid": lambda: forge(other, claims_for(provider), kid="rotated-away"),
        "no_signature_alg_none": lambda: _unsigned(claims_for(provider)),
    }[case]()
    async with oidc_gateway.client() as c:
        r = await c.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text


async def test_a_correctly_signed_access_token_for_the_api_audience_is_accepted(
    oidc_gateway: Gateway, provider: OidcProvider
) -> None:
    # Control for the refusals above: same key, right issuer, the API's audience.
    token = forge(provider.signing_key, claims_for(provider, aud=API_AUDIENCE, sub="carla", groups=["staff"]))
    async with oidc_gateway.client() as c:
        r = await c.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["department"] == "Vertrieb"


def _unsigned(claims: dict[str, Any]) -> str:
    import base64
    import json

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'kid': 'schleuse-test-1'})}.{b64(claims)}."


async def test_refresh_renews_tokens_and_rotates_the_session(oidc_gateway: Gateway, browser: httpx.AsyncClient) -> None:
    async with oidc_gateway.client() as c:
        r = await login(oidc_gateway, c, browser, "ben")
        old = c.cookies["schleuse_session"]
        csrf = c.cookies["schleuse_csrf"]
        before = await oidc_gateway.identity.sessions.touch(old)
        assert before is not None and before.refresh_token
        await asyncio.sleep(1.1)  # a new ID token differs from the first only by its `iat` second
        refreshed = await c.post("/api/auth/refresh", headers={"X-CSRF-Token": csrf})
        assert refreshed.status_code == 200, refreshed.text
        after = await oidc_gateway.identity.sessions.touch(c.cookies["schleuse_session"])
    assert r.status_code == 303
    assert c.cookies["schleuse_session"] != old
    assert await oidc_gateway.identity.sessions.touch(old) is None
    assert after is not None and after.id_token != before.id_token


async def test_logout_ends_the_session_and_points_to_the_provider(
    oidc_gateway: Gateway, browser: httpx.AsyncClient, provider: OidcProvider
) -> None:
    async with oidc_gateway.client() as c:
        await login(oidc_gateway, c, browser, "anna")
        out = await c.post("/api/auth/logout", headers={"X-CSRF-Token": c.cookies["schleuse_csrf"]})
        me = await c.get("/api/auth/me")
    url = urlsplit(out.json()["provider_logout_url"])
    assert out.status_code == 200 and f"{url.scheme}://{url.netloc}" == provider.issuer
    assert "id_token_hint" in parse_qs(url.query)
    assert me.status_code == 401


async def test_a_provider_claiming_another_issuer_is_not_used(
    gateway_factory: GatewayFactory, provider: OidcProvider
) -> None:
    gw = await gateway_factory(
        oidc=oidc_settings(
            provider,
            issuer=provider.issuer + "/impostor",
            discovery_url=provider.issuer + "/.well-known/openid-configuration",
        )
    )
    async with gw.client() as c:
        r = await c.get("/api/auth/oidc/login", params={"login_hint": "anna"})
    assert r.status_code == 502


async def test_unknown_state_is_refused(oidc_gateway: Gateway) -> None:
    async with oidc_gateway.client() as c:
        r = await c.get("/api/auth/oidc/callback", params={"code": "x", "state": secrets.token_urlsafe(16)})
    assert r.status_code == 400
