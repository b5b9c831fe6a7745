"""Which assistants a person may see, and the seed's shape in schleuse.yaml."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field


def visible_to(departments: Sequence[str], active: bool, department: str | None) -> bool:
    """Active assistants without departments are for everyone; others only for their departments."""
    if not active:
        return False
    if not departments:
        return True
    return department is not None and department.casefold() in {d.casefold() for d in departments}


class SeedAssistant(BaseModel):
    """`assistants: [{name, model, department, system_prompt}]` in schleuse.yaml."""

    name: str
    model: str = "default"
    department: str | list[str] | None = None
    system_prompt: str = ""
    description: str = ""
    allow_escalation: bool = False
    temperature: float | None = None
    dlp_policy: str | None = None
    external_assistant_id: str | None = None

    def departments(self) -> list[str]:
        """The seed's department(s) as a list."""
        if self.department is None:
            return []
        return [self.department] if isinstance(self.department, str) else list(self.department)


class SeedRetention(BaseModel):
    """`retention: [{purpose, retention_days}]` in schleuse.yaml."""

    purpose: str
    retention_days: int = Field(ge=1)


def seed_assistants(config: dict[str, Any]) -> list[SeedAssistant]:
    """The assistants listed in a loaded schleuse.yaml."""
    return [SeedAssistant.model_validate(a) for a in config.get("assistants") or []]


def chat_retention_days(config: dict[str, Any], purpose: str = "chat") -> int | None:
    """Days chat content is kept according to schleuse.yaml, None when not configured."""
    for entry in config.get("retention") or []:
        rule = SeedRetention.model_validate(entry)
        if rule.purpose == purpose:
            return rule.retention_days
    return None
