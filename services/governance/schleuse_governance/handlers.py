"""What happens when audit events arrive: appended once to the hash chain."""

from __future__ import annotations

from dataclasses import dataclass

from schleuse_common.bus import Bus, Envelope
from schleuse_common.contracts.audit import AuditEvent
from schleuse_common.db import Database
from schleuse_governance import store


@dataclass
class GovernanceHandlers:
    bus: Bus
    db: Database

    async def register(self) -> None:
        """Consume every `audit.>` event durably."""
        await self.bus.consume(
            stream="AUDIT",
            durable="governance-audit",
            filter_subject="audit.>",
            data_model=AuditEvent,
            handler=self.record_audit,
        )

    async def record_audit(self, env: Envelope[AuditEvent]) -> None:
        """Append one audit event to the chain."""
        async with self.db.session() as session:
            await store.append(session, env, env.type)
