"""Every identity change is a fact on JetStream `audit.<area>.<action>`: ids and outcomes, never content."""

from __future__ import annotations

from dataclasses import dataclass

from schleuse_common.auth import Actor
from schleuse_common.bus import Bus
from schleuse_common.contracts.audit import AuditEvent, audit_subject


@dataclass
class Auditor:
    """Publishes audit events and waits for the stream's ack, so an unaudited change fails with it."""

    bus: Bus

    async def record(
        self,
        area: str,
        action: str,
        *,
        target_type: str,
        target_id: str | None,
        actor: Actor | None,
        outcome: str = "ok",
        **detail: str | int | float | bool | None,
    ) -> None:
        """Publish `audit.<area>.<action>`."""
        event = AuditEvent(
            action=f"{area}.{action}", target_type=target_type, target_id=target_id, outcome=outcome, detail=detail
        )
        await self.bus.publish(audit_subject(area, action), event, actor=actor)
