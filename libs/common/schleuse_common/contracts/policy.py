"""`policy.event` on the `POLICY` stream: DLP findings and policy decisions, never the values."""

from pydantic import BaseModel, Field

from schleuse_common.contracts.dlp import FindingSummary

POLICY_EVENT = "policy.event"


class PolicyEvent(BaseModel):
    kind: str
    user_id: str | None = None
    department: str | None = None
    assistant_id: str | None = None
    thread_id: str | None = None
    findings: list[FindingSummary] = Field(default_factory=list)
    decision: str = "allow"
    detail: str | None = None
