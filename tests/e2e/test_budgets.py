"""Budgets and the provider registry through the gateway, all services as real processes.

An admin sets a department's hard budget; that department's next call is refused by the OpenAI SDK with a
429 naming the budget, while other departments go on. Provider secrets are only ever shown masked.
"""

from __future__ import annotations

import uuid

import openai
import pytest

from schleuse_common.devrun import Platform
from tests.e2e.helpers import api, user_key

pytestmark = pytest.mark.e2e


def _chat(platform: Platform, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{platform.url}/v1", api_key=key, max_retries=0, timeout=30)


def test_a_spent_department_budget_refuses_with_a_429_naming_it(
    platform: Platform, admin_key: str, database_url: str
) -> None:
    department = f"Einkauf-{uuid.uuid4().hex[:6]}"
    spent_key = user_key(database_url, ["user"], department)
    other_key = user_key(database_url, ["user"], f"Vertrieb-{uuid.uuid4().hex[:6]}")
    # the bundled demo model is free; a priced model (the same upstream) makes every call cost something
    priced = f"e2e-priced-{uuid.uuid4().hex[:6]}"
    model = {"id": f"{priced}-model", "upstream_model": "schleuse-demo", "input_per_1m": 100, "output_per_1m": 100}
    provider = {"kind": "openai_compatible", "base_url": platform.demo_url, "models": [model]}
    r = api(platform, admin_key, "PUT", f"/api/admin/providers/{priced}", provider)
    assert r.status_code == 200, r.text
    r = api(platform, admin_key, "PUT", f"/api/admin/budgets/department/{department}", {"hard_limit": "0"})
    assert r.status_code == 200, r.text
    try:
        assert r.json()["hard_limit"] == "0" and r.json()["currency"] == "EUR"
        with pytest.raises(openai.RateLimitError) as info:
            _chat(platform, spent_key).chat.completions.create(
                model="default", messages=[{"role": "user", "content": "Hallo"}], max_tokens=20
            )
        assert info.value.code == "budget_exceeded"
        assert f"department '{department}'" in info.value.message
        answer = _chat(platform, other_key).chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Hallo"}], max_tokens=20
        )
        assert answer.choices[0].message.content
        listing = api(platform, admin_key, "GET", "/api/admin/budgets?scope=department").json()
        assert department in [b["scope_id"] for b in listing["items"]]
        r = api(platform, admin_key, "DELETE", f"/api/admin/budgets/department/{department}")
        assert r.status_code == 200, r.text
        answer = _chat(platform, spent_key).chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Hallo"}], max_tokens=20
        )
        assert answer.choices[0].message.content  # the limit is lifted with the budget
    finally:
        api(platform, admin_key, "DELETE", f"/api/admin/budgets/department/{department}")
        r = api(platform, admin_key, "DELETE", f"/api/admin/providers/{priced}")  # back to the demo provider
        assert r.status_code == 200, r.text


def test_admin_surface_is_admin_only_and_never_returns_secrets(
    platform: Platform, admin_key: str, database_url: str
) -> None:
    dpo_key = user_key(database_url, ["user", "dpo"], None)
    for path in ("/api/admin/providers", "/api/admin/models", "/api/admin/routing", "/api/admin/budgets"):
        assert api(platform, dpo_key, "GET", path).status_code == 403
        assert api(platform, admin_key, "GET", path).status_code == 200
    secret = f"sk-e2e-{uuid.uuid4().hex}"
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    body = {
        "kind": "openai_compatible",
        "base_url": platform.demo_url,
        "api_key": secret,
        "enabled": False,
        "models": [{"id": f"{name}-model", "upstream_model": "schleuse-demo", "input_per_1m": 0.5}],
    }
    r = api(platform, admin_key, "PUT", f"/api/admin/providers/{name}", body)
    try:
        assert r.status_code == 200, r.text
        assert secret not in r.text and r.json()["secrets"]["api_key"] == f"{secret[:4]}****{secret[-4:]}"
        listing = api(platform, admin_key, "GET", "/api/admin/providers")
        assert secret not in listing.text and name in [p["name"] for p in listing.json()["items"]]
        models = api(platform, admin_key, "GET", "/api/admin/models").json()["items"]
        assert {"id": f"{name}-model", "provider": name, "input_per_1m": 0.5}.items() <= next(
            m for m in models if m["id"] == f"{name}-model"
        ).items()
    finally:
        assert api(platform, admin_key, "DELETE", f"/api/admin/providers/{name}").status_code == 200
