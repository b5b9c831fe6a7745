"""`usage.recorded` on the `USAGE` stream: one fact per provider call, consumed by analytics."""

from pydantic import BaseModel

from schleuse_common.contracts.providers import Routing, Usage

USAGE_RECORDED = "usage.recorded"


class UsageRecorded(BaseModel):
    """Tokens, cost and routing of one call; ids only, never content."""

    call_id: str
    user_id: str
    department: str | None = None
    assistant_id: str | None = None
    routing: Routing
    usage: Usage
    cost: float = 0.0
    currency: str = "EUR"
    latency_ms: float = 0.0
    status: str = "ok"
