"""`dlp.scan` and `dlp.restore`: find PII, replace it with stable placeholders, put it back."""

import re
from typing import Literal

from pydantic import BaseModel, Field, model_validator

DLP_SCAN = "dlp.scan"
DLP_RESTORE = "dlp.restore"
DLP_FORGET = "dlp.forget"

# The placeholder syntax is the contract between dlp (which writes them) and chat (which holds back a
# streamed answer until a placeholder is whole): "[" + type + "_" + number + "]", e.g. [PERSON_1].
PLACEHOLDER = re.compile(r"\[([A-Z][A-Z_]*?)_(\d{1,6})\]")
MAX_PLACEHOLDER_LEN = 33  # "[" + type (<= 24 chars) + "_" + up to 6 digits + "]"


def has_placeholder(text: str) -> bool:
    """True when `text` contains at least one complete placeholder."""
    return "[" in text and PLACEHOLDER.search(text) is not None


class PlaceholderStreamBuffer:
    """Cuts a stream of chunks into pieces that never end inside a placeholder.

    `push` returns the text that is safe to restore now, holding back a trailing "[PERS" until the next
    chunk shows how it ends; `flush` returns what is held at the end of the stream.
    """

    def __init__(self) -> None:
        self._pending = ""

    def push(self, chunk: str) -> str:
        """Add a chunk; return the complete part (possibly empty)."""
        text = self._pending + chunk
        cut = text.rfind("[")
        if cut != -1 and _could_be_placeholder_prefix(text[cut:]):
            self._pending = text[cut:]
            return text[:cut]
        self._pending = ""
        return text

    def flush(self) -> str:
        """End of stream: return whatever is held back."""
        rest, self._pending = self._pending, ""
        return rest


def _could_be_placeholder_prefix(tail: str) -> bool:
    """True if `tail` (starting with "[") may still grow into a placeholder."""
    if len(tail) > MAX_PLACEHOLDER_LEN:
        return False
    body = tail[1:]
    if not body:
        return True
    if not body[0].isupper():
        return False
    return all(c.isupper() or c.isdigit() or c == "_" for c in body)


Action = Literal["redact", "mask", "hash", "block", "allow"]


class ScanRequest(BaseModel):
    """Text to scan, with the context that picks the policy and the placeholder scope."""

    text: str
    thread_id: str
    assistant_id: str | None = None
    department: str | None = None


class FindingSummary(BaseModel):
    """What was found: entity type, how often, what was done. Never the values."""

    entity_type: str
    count: int
    action: Action


class ScanResult(BaseModel):
    """The text as it may leave the house, or a block decision."""

    text: str
    blocked: bool = False
    findings: list[FindingSummary] = Field(default_factory=list)
    language: str | None = None


class RestoreRequest(BaseModel):
    """Text containing placeholders of a thread, to be shown to the user."""

    text: str
    thread_id: str


class RestoreResult(BaseModel):
    text: str


class ForgetRequest(BaseModel):
    """Delete the placeholder mapping of a thread (thread deleted or user shredded)."""

    thread_id: str


class ForgetResult(BaseModel):
    deleted: int


# -- policies (admin) ---------------------------------------------------------------------

DLP_POLICIES_LIST = "dlp.policies.list"
DLP_POLICIES_PUT = "dlp.policies.put"
DLP_POLICIES_DELETE = "dlp.policies.delete"
DLP_POLICIES_FAIL_OPEN = "dlp.policies.fail_open"

# Policy changes are audited as `audit.dlp.<action>`; the policy actions double as change notices
# (core NATS subscribers of `audit.dlp.*` reload), `fail_open` records a turn sent unscanned.
DLP_AUDIT_AREA = "dlp"
POLICY_CHANGE_ACTIONS = ("policy_put", "policy_delete")
FAIL_OPEN_ACTION = "fail_open"

PolicyScope = Literal["default", "department", "assistant"]
SECRETS_BLOCKED: dict[str, Action] = {"SECRET": "block"}  # the default actions: secrets never leave, not even redacted


class PolicyDoc(BaseModel):
    """A DLP policy as admins write it; the most specific scope applies (assistant, department, default).

    Entity types not in `actions` get `default_action`; `allow_terms` (the organisation's own name,
    public officials) are never findings. `fail_open` lets turns of this scope go out unscanned while
    DLP is unavailable (audited each time); off by default, so such turns are refused.
    """

    scope: PolicyScope = "default"
    scope_id: str | None = Field(default=None, min_length=1, max_length=128)
    default_action: Action = "redact"
    actions: dict[str, Action] = Field(default_factory=lambda: dict(SECRETS_BLOCKED))
    allow_terms: list[str] = Field(default_factory=list, max_length=1000)
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    enabled_types: list[str] | None = None  # None: every type
    fail_open: bool = False

    @model_validator(mode="after")
    def _scope_id_matches_scope(self) -> "PolicyDoc":
        if (self.scope == "default") != (self.scope_id is None):
            raise ValueError("scope_id is required for department and assistant policies, and absent for the default")
        return self


class PoliciesListRequest(BaseModel):
    pass


class PoliciesList(BaseModel):
    policies: list[PolicyDoc] = Field(default_factory=list)


class PolicyPut(BaseModel):
    """Create or replace the policy of `policy.scope` / `policy.scope_id`."""

    policy: PolicyDoc


class PolicyDelete(BaseModel):
    """Remove a scope's policy; the next more general one applies."""

    scope: PolicyScope
    scope_id: str | None = None


class PolicyDeleted(BaseModel):
    deleted: int


class FailOpenRequest(BaseModel):
    pass


class FailOpenScopes(BaseModel):
    """The fail-open setting of every scope that has a policy; chat keeps it to decide while DLP is down."""

    default: bool = False
    departments: dict[str, bool] = Field(default_factory=dict)
    assistants: dict[str, bool] = Field(default_factory=dict)

    def applies(self, *, assistant_id: str | None, department: str | None) -> bool:
        """True when the policy that would apply to this turn lets it fail open (same order as the policies)."""
        if assistant_id is not None and assistant_id in self.assistants:
            return self.assistants[assistant_id]
        if department is not None and department in self.departments:
            return self.departments[department]
        return self.default
