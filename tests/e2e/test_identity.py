"""Identity end to end on the whole platform: the first admin's password from the operator command, a
browser session with CSRF, a self-service API key used by the OpenAI SDK path, and its revocation."""

from __future__ import annotations

import secrets
import subprocess
import sys

import httpx

from schleuse_common.devrun import Platform


def test_first_admin_logs_in_creates_a_key_and_revokes_it(platform: Platform, admin_key: str) -> None:
    login = f"e2e-admin-{secrets.token_hex(3)}"
    out = (
        subprocess.run(
            [sys.executable, "-m", "schleuse_gateway.admin", "bootstrap", "--login", login],
            env=platform.env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()
    )
    assert out[-1].startswith("sk-sl-")  # the contract `make run` relies on: the key is the last line
    password = out[-2].rsplit(": ", 1)[1]
    with httpx.Client(base_url=platform.url, timeout=30) as browser:
        r = browser.post("/api/auth/login", json={"login": login, "password": password})
        assert r.status_code == 200 and "admin" in r.json()["roles"]
        csrf = r.json()["csrf_token"]
        assert browser.post("/api/keys", json={"name": "sdk"}).status_code == 403  # CSRF
        created = browser.post("/api/keys", json={"name": "sdk", "scopes": ["chat"]}, headers={"X-CSRF-Token": csrf})
        assert created.status_code == 201
        key = created.json()["key"]
    with httpx.Client(base_url=platform.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as sdk:
        assert sdk.get("/v1/models").status_code == 200
        assert sdk.get("/api/admin/users").status_code == 403  # scope `chat` only
    with httpx.Client(base_url=platform.url, timeout=30, headers={"Authorization": f"Bearer {admin_key}"}) as admin:
        assert admin.delete(f"/api/admin/keys/{created.json()['id']}").status_code == 200
    with httpx.Client(base_url=platform.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as sdk:
        assert sdk.get("/v1/models").status_code == 401
