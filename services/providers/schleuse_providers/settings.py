"""Providers settings (prefix `SCHLEUSE_PROVIDERS_`, section `providers_service:` in schleuse.yaml).

The provider list itself is the top-level `providers:` list and `routing:` mapping of schleuse.yaml
(see config.py); these are the service's own knobs.
"""

from pydantic_settings import SettingsConfigDict

from schleuse_common.settings import ServiceSettings


class ProvidersSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SCHLEUSE_PROVIDERS_", extra="ignore")
    yaml_section = "providers_service"

    demo_url: str = "http://127.0.0.1:8099/v1"  # the bundled demo server, used when no provider is configured
    refresh_seconds: float = 30.0  # registry re-read interval (key rotation without restart)
    attempts_per_model: int = 2
    breaker_threshold: int = 5
    breaker_reset_seconds: float = 30.0

    budget_checks: bool = True  # ask analytics before every call (skipped while it says no budget exists)
    budget_timeout_seconds: float = 2.0
    budget_fail_open: bool = False  # analytics unreachable: refuse (default) or let calls through unchecked
    budget_none_ttl_seconds: float = 5.0  # how long "no budget configured" is trusted without asking again
