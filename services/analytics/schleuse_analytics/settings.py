"""Analytics settings (prefix `SCHLEUSE_ANALYTICS_`, section `analytics:` in schleuse.yaml)."""

from pydantic_settings import SettingsConfigDict

from schleuse_common.settings import ServiceSettings


class AnalyticsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SCHLEUSE_ANALYTICS_", extra="ignore")
    yaml_section = "analytics"

    budget_refresh_seconds: float = 10.0  # re-read budget definitions (changes also arrive as audit facts)
    budget_hold_seconds: int = 900  # a crashed caller's reservation is returned after this long
    budget_key_prefix: str = "schleuse:budget:"  # Redis keys of the budget ledgers
