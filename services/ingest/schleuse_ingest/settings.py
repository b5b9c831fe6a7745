"""Ingest settings (env prefix `SCHLEUSE_INGEST_`, section `ingest:` of schleuse.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from schleuse_common.settings import ServiceSettings
from schleuse_ingest.domain.access import AccessPolicy


class IngestSettings(ServiceSettings):
    """Where call logs are read from, how they are batched, how long calls are kept, who sees what."""

    model_config = SettingsConfigDict(env_prefix="SCHLEUSE_INGEST_", extra="ignore")
    yaml_section: ClassVar[str | None] = "ingest"

    dir: Path = Path(".dev/calls")
    poll_interval_s: float = 0.1
    settle_s: float = 300.0  # a past day's file idle this long has its last line read even without newline
    batch_lines: int = 5000
    read_chunk_bytes: int = 4 << 20
    consumer_durable: str = "ingest"
    consumer_batch: int = 500
    retention_days: int = 30
    purge_interval_s: float = 24 * 3600
    read_roles: list[str] = ["agent", "admin", "dpo"]
    change_roles: list[str] = ["agent", "admin"]
    pii_roles: list[str] = ["agent", "admin"]
    admin_roles: list[str] = ["admin"]
    rights_roles: list[str] = ["admin", "dpo"]

    def access_policy(self) -> AccessPolicy:
        """The role sets as the domain's policy."""
        return AccessPolicy(
            read_roles=frozenset(self.read_roles),
            change_roles=frozenset(self.change_roles),
            pii_roles=frozenset(self.pii_roles),
            admin_roles=frozenset(self.admin_roles),
            rights_roles=frozenset(self.rights_roles),
        )
