"""Governance settings (prefix `SCHLEUSE_GOVERNANCE_`, section `governance:` in schleuse.yaml)."""

from pydantic_settings import SettingsConfigDict

from schleuse_common.settings import ServiceSettings


class GovernanceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SCHLEUSE_GOVERNANCE_", extra="ignore")
    yaml_section = "governance"
