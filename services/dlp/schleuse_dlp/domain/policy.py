"""DLP policies: what to do with each entity type, per department and assistant, with allow-listed terms."""

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from schleuse_dlp.domain import spans as t

Action = Literal["redact", "mask", "hash", "block", "allow"]
ScopeKind = Literal["default", "department", "assistant"]

# Secrets never leave the house, not even as placeholders in a prompt about them.
DEFAULT_ACTIONS: dict[str, Action] = {t.SECRET: "block"}


class Policy(BaseModel):
    """Actions per entity type; types not listed get `default_action`."""

    scope: ScopeKind = "default"
    scope_id: str | None = None
    default_action: Action = "redact"
    actions: dict[str, Action] = Field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    allow_terms: list[str] = Field(default_factory=list)
    min_score: float = 0.0
    enabled_types: list[str] | None = None  # None: all types
    fail_open: bool = False  # while DLP is down, turns of this scope go out unscanned (audited) instead of refused

    def action_for(self, entity_type: str) -> Action:
        """The action this policy prescribes for an entity type."""
        return self.actions.get(entity_type, self.default_action)

    def covers(self, entity_type: str, score: float) -> bool:
        """True if findings of this type and confidence are acted on at all."""
        if score < self.min_score:
            return False
        return self.enabled_types is None or entity_type in self.enabled_types


class PolicyBook:
    """All policies; the most specific one wins: assistant, then department, then the default."""

    def __init__(self, policies: Iterable[Policy] = ()) -> None:
        self._by_scope: dict[tuple[str, str | None], Policy] = {}
        for policy in policies:
            self._by_scope[(policy.scope, policy.scope_id)] = policy
        self._by_scope.setdefault(("default", None), Policy())

    def resolve(self, *, assistant_id: str | None, department: str | None) -> Policy:
        """The policy that applies to a request."""
        if assistant_id is not None and ("assistant", assistant_id) in self._by_scope:
            return self._by_scope[("assistant", assistant_id)]
        if department is not None and ("department", department) in self._by_scope:
            return self._by_scope[("department", department)]
        return self._by_scope[("default", None)]

    def get(self, scope: str, scope_id: str | None) -> Policy | None:
        """The policy of exactly this scope, if one is set (the default always is)."""
        return self._by_scope.get((scope, scope_id))

    def all(self) -> list[Policy]:
        """Every policy, the default first."""
        return sorted(self._by_scope.values(), key=lambda p: (p.scope != "default", p.scope, p.scope_id or ""))

    def fail_open(self) -> tuple[bool, dict[str, bool], dict[str, bool]]:
        """The fail-open setting of the default, of each department and of each assistant that has a policy."""
        by_kind: dict[str, dict[str, bool]] = {"department": {}, "assistant": {}}
        for (scope, scope_id), policy in self._by_scope.items():
            if scope in by_kind and scope_id is not None:
                by_kind[scope][scope_id] = policy.fail_open
        return self._by_scope[("default", None)].fail_open, by_kind["department"], by_kind["assistant"]
