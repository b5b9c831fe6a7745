"""The gateway in-process (ASGI) on a real runtime: the session's NATS, Postgres and Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from schleuse_common import service
from schleuse_common.service import Runtime
from schleuse_common.settings import InfraSettings
from schleuse_gateway.admin import bootstrap
from schleuse_gateway.app import create_app
from schleuse_gateway.identity.wiring import Identity
from schleuse_gateway.main import SPEC, wire
from schleuse_gateway.settings import GatewaySettings

BASE_URL = "http://127.0.0.1:18080"


@dataclass
class Gateway:
    """One gateway instance: its runtime, app and a client factory (each client keeps its own cookies)."""

    rt: Runtime
    app: FastAPI
    settings: GatewaySettings

    @property
    def identity(self) -> Identity:
        identity: Identity = self.app.state.identity
        return identity

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=self.settings.public_url, **kwargs
        )


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def gateway_factory(infra: InfraSettings) -> AsyncIterator[GatewayFactory]:
    """Start gateway instances with settings overrides; all stopped at the end of the session."""
    started: list[Runtime] = []

    async def make(**overrides: Any) -> Gateway:
        values: dict[str, Any] = {
            "health_port": 0,
            "public_url": BASE_URL,
            "rate_limit_user": 100_000,
            "rate_limit_key": 100_000,
            **overrides,
        }
        settings = GatewaySettings(**values)
        rt = await service.start(SPEC, settings, wire)
        started.append(rt)
        return Gateway(rt, create_app(rt), settings)

    yield make
    for rt in started:
        await service.stop(rt)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def gateway(gateway_factory: GatewayFactory) -> Gateway:
    """The default gateway instance."""
    return await gateway_factory()


@dataclass
class Admin:
    login: str
    password: str
    key: str


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def admin(gateway: Gateway) -> Admin:
    """A first admin made by the operator command: a login with a random password, and an API key."""
    login = f"admin-{secrets.token_hex(4)}"
    key, password = await bootstrap(gateway.settings, login, "IT")
    assert password is not None
    return Admin(login, password, key)


@pytest.fixture
def auth_header() -> Callable[[str], dict[str, str]]:
    return lambda key: {"Authorization": f"Bearer {key}"}


async def make_user(
    gw: Gateway, admin_key: str, *, roles: list[str], department: str | None = None, scopes: list[str] | None = None
) -> dict[str, Any]:
    """A local user with `roles` made through the admin API, with its password and a fresh API key."""
    login = f"u-{secrets.token_hex(5)}"
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with gw.client() as c:
        r = await c.post(
            "/api/admin/users",
            json={"login_name": login, "roles": roles, "department": department},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        created = r.json()
        r = await c.post(
            "/api/admin/keys",
            json={"user_id": created["user"]["id"], "name": "test", "scopes": scopes or ["*"]},
            headers=headers,
        )
        assert r.status_code == 201, r.text
    return {"login": login, "password": created["password"], "id": created["user"]["id"], "key": r.json()["key"]}
