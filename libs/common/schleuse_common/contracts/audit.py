"""`audit.<area>.<action>` on the `AUDIT` stream: who did what to which id; never content."""

from pydantic import BaseModel, Field

AUDIT_PREFIX = "audit"


class AuditEvent(BaseModel):
    """One audited action. `detail` holds ids, counts and flags only."""

    action: str
    target_type: str
    target_id: str | None = None
    outcome: str = "ok"
    detail: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


def audit_subject(area: str, action: str) -> str:
    """The subject an audit event of `area` and `action` is published on."""
    return f"{AUDIT_PREFIX}.{area}.{action}"
