"""Pure rules: scopes, sliding windows, claims mapping, password policy and lockout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schleuse_gateway.domain.claims import ClaimsMapping, map_claims
from schleuse_gateway.domain.passwords import (
    Lockout,
    WeakPassword,
    check_policy,
    hash_password,
    random_password,
    verify_password,
)
from schleuse_gateway.domain.ratelimit import Window, estimate, retry_after
from schleuse_gateway.domain.scopes import grants, required_scope, valid_scope


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/v1/chat/completions", "chat"),
        ("GET", "/v1/models", "chat"),
        ("GET", "/api/calls/123", "calls:read"),
        ("PATCH", "/api/calls/123", "calls:write"),
        ("GET", "/healthz", None),
    ],
)
def test_required_scope_follows_the_route(method: str, path: str, scope: str | None) -> None:
    assert required_scope(method, path) == scope


def test_grants() -> None:
    assert grants(["*"], "admin:write")
    assert grants(["calls"], "calls:write") and grants(["calls:read"], "calls:read")
    assert not grants(["calls:read"], "calls:write")
    assert not grants(["chat"], "keys:read")
    assert grants([], None)


def test_valid_scope() -> None:
    assert all(valid_scope(s) for s in ("*", "chat", "calls:read", "prompt-library:write"))
    assert not any(valid_scope(s) for s in ("", "Calls", "calls:delete", "a b", ":read"))


def test_sliding_window_weighs_the_previous_window() -> None:
    assert Window.at(125.0, 60) == Window(2, 5 / 60)
    assert estimate(previous=60, current=0, elapsed=0.5) == 30
    assert retry_after(previous=0, current=10, elapsed=0.5, limit=10, seconds=60) is None
    wait = retry_after(previous=0, current=11, elapsed=0.5, limit=10, seconds=60)
    assert wait is not None and 30 < wait < 60
    # Over only because of the previous window: admitted once its weight has fallen enough.
    wait = retry_after(previous=10, current=5, elapsed=0.0, limit=10, seconds=60)
    assert wait == pytest.approx(30.0)
    assert estimate(10, 5, 0.5) <= 10


def test_claims_mapping_roles_and_department() -> None:
    mapping = ClaimsMapping(
        role_claim="realm_access.roles",
        role_map={"kc-admins": ["admin", "user"]},
        department_claim="department",
        department_map={"EK": "Einkauf"},
    )
    mapped = map_claims({"realm_access": {"roles": ["kc-admins", "dpo", "unknown"]}, "department": "EK"}, mapping)
    assert mapped.roles == ["admin", "dpo", "user"] and mapped.department == "Einkauf"
    plain = map_claims({"sub": "x"}, mapping)
    assert plain.roles == ["user"] and plain.department is None


def test_password_policy_and_hashes() -> None:
    with pytest.raises(WeakPassword):
        check_policy("elevenchars")
    check_policy("twelve chars")
    stored = hash_password("twelve chars")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "twelve chars") and not verify_password(stored, "twelve charz")
    assert not verify_password(None, "anything at all")
    assert len(random_password()) >= 12


def test_lockout_after_threshold() -> None:
    rule = Lockout(threshold=5, duration=timedelta(minutes=15))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    failures, until = 0, None
    for _ in range(4):
        failures, until = rule.after_failure(failures, now)
        assert until is None
    failures, until = rule.after_failure(failures, now)
    assert failures == 5 and until == now + timedelta(minutes=15)
    assert rule.is_locked(until, now + timedelta(minutes=14)) and not rule.is_locked(until, now + timedelta(minutes=16))
