"""Claims mapping: which OIDC claim gives a person's department and roles."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ROLES = ("user", "agent", "steward", "dpo", "admin")


@dataclass(frozen=True)
class ClaimsMapping:
    """Configured mapping; claim names may be dotted paths (`realm_access.roles` in Keycloak)."""

    department_claim: str | None = "department"
    department_map: Mapping[str, str] = field(default_factory=dict)
    role_claim: str | None = "groups"
    role_map: Mapping[str, list[str]] = field(default_factory=dict)
    default_roles: tuple[str, ...] = ("user",)


@dataclass(frozen=True)
class MappedIdentity:
    """What the gateway keeps of an OIDC identity: roles and department (the person stays a pseudonym)."""

    roles: list[str]
    department: str | None


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted `path` in `claims`, or None."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _values(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [v for v in raw.replace(",", " ").split() if v]
    if isinstance(raw, list | tuple):
        return [str(v) for v in raw if isinstance(v, str | int)]
    return []


def map_claims(claims: Mapping[str, Any], mapping: ClaimsMapping) -> MappedIdentity:
    """Roles and department of a person from their token's claims."""
    roles: set[str] = set()
    if mapping.role_claim:
        for value in _values(claim(claims, mapping.role_claim)):
            if value in mapping.role_map:
                roles.update(mapping.role_map[value])
            elif value in ROLES:
                roles.add(value)
    if not roles:
        roles.update(mapping.default_roles)
    department = None
    if mapping.department_claim:
        values = _values(claim(claims, mapping.department_claim))
        if isinstance(claim(claims, mapping.department_claim), str):
            values = [str(claim(claims, mapping.department_claim)).strip()]
        if values:
            department = mapping.department_map.get(values[0], values[0])[:128] or None
    return MappedIdentity(roles=sorted(r for r in roles if r in ROLES), department=department)
