"""The assistants catalogue: read from the database once, cached in memory, refreshed on change or after a TTL.

The turn looks assistants up here, so the hot path never waits for the database for them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects.postgresql import insert

from schleuse_chat import store
from schleuse_chat.domain.assistants import seed_assistants, visible_to
from schleuse_common.auth import Actor
from schleuse_common.bus import Bus, BusError
from schleuse_common.contracts.chat_api import Assistant
from schleuse_common.db import Database
from schleuse_common.ids import new_id

log = structlog.get_logger("schleuse.chat.assistants")

CHANGED_SUBJECT = "chat.assistants.changed"  # core NATS: every replica drops its cache


def to_assistant(row: Any) -> Assistant:
    """A database row as the contract's Assistant."""
    return Assistant.model_validate(dict(row._mapping))


@dataclass
class AssistantCatalog:
    """All assistants by id, reloaded at most every `ttl` seconds or when any replica changed one."""

    db: Database
    ttl: float = 30.0
    _by_id: dict[str, Assistant] = field(default_factory=dict)
    _loaded_at: float = -1e9
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def listen(self, bus: Bus) -> None:
        """Drop the cache when another replica announces a change."""

        async def on_change(_msg: Any) -> None:
            self.invalidate()

        bus._subs.append(await bus.nc.subscribe(CHANGED_SUBJECT, cb=on_change))

    def invalidate(self) -> None:
        """Reload on next use."""
        self._loaded_at = -1e9

    async def all(self) -> list[Assistant]:
        """Every assistant, active or not."""
        if time.monotonic() - self._loaded_at > self.ttl:
            async with self._lock:
                if time.monotonic() - self._loaded_at > self.ttl:
                    async with self.db.session() as session:
                        rows = (await session.execute(sa.select(store.assistants))).all()
                    self._by_id = {r.id: to_assistant(r) for r in rows}
                    self._loaded_at = time.monotonic()
        return list(self._by_id.values())

    async def visible(self, actor: Actor) -> list[Assistant]:
        """The active assistants of the actor's department, by name."""
        return sorted(
            (a for a in await self.all() if visible_to(a.departments, a.active, actor.department)),
            key=lambda a: a.name.casefold(),
        )

    async def usable(self, assistant_id: str, actor: Actor) -> Assistant:
        """The assistant if the actor may chat with it; 404 otherwise (no hint whether it exists)."""
        await self.all()
        assistant = self._by_id.get(assistant_id)
        if assistant is None:
            self.invalidate()  # created a moment ago on another replica?
            await self.all()
            assistant = self._by_id.get(assistant_id)
        if assistant is None or not visible_to(assistant.departments, assistant.active, actor.department):
            raise BusError("assistant_not_found", "no such assistant", 404)
        return assistant


async def seed(db: Database, config: dict[str, Any]) -> int:
    """Insert the assistants of schleuse.yaml that do not exist yet (by name); returns how many were new."""
    created = 0
    async with db.session() as session:
        for item in seed_assistants(config):
            stmt = (
                insert(store.assistants)
                .values(
                    id=new_id(),
                    name=item.name,
                    description=item.description,
                    departments=item.departments(),
                    model=item.model,
                    allow_escalation=item.allow_escalation,
                    system_prompt=item.system_prompt,
                    temperature=item.temperature,
                    dlp_policy=item.dlp_policy,
                    external_assistant_id=item.external_assistant_id,
                )
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(store.assistants.c.id)
            )
            if (await session.execute(stmt)).first() is not None:
                created += 1
    if created:
        log.info("assistants.seeded", count=created)
    return created
