"""What several e2e tests need: people with roles and keys, and calls to the gateway."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from schleuse_common.db import Database
from schleuse_common.devrun import Platform
from schleuse_gateway import store
from schleuse_gateway.domain.keys import mint_key


def user_key(database_url: str, roles: list[str], department: str | None) -> str:
    """A new user with `roles` in `department` and an API key for them, made directly in the gateway's store."""

    async def make() -> str:
        db = Database(database_url, "gateway", pool_size=1)
        try:
            async with db.session() as session:
                user_id = await store.create_user(
                    session, subject_hash=uuid.uuid4().hex, roles=roles, department=department
                )
                key = mint_key()
                await store.create_api_key(
                    session, user_id=user_id, name="e2e", prefix=key.prefix, digest=key.digest, scopes=["*"]
                )
            return key.secret
        finally:
            await db.dispose()

    return asyncio.run(make())


def api(platform: Platform, key: str, method: str, path: str, body: object = None) -> httpx.Response:
    """One authenticated call to the gateway's REST API."""
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.request(method, f"{platform.url}{path}", headers=headers, json=body, timeout=30)
