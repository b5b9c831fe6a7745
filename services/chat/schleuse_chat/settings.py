"""Chat settings (prefix `SCHLEUSE_CHAT_`, section `chat:` in schleuse.yaml)."""

from pydantic_settings import SettingsConfigDict

from schleuse_common.settings import ServiceSettings


class ChatSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SCHLEUSE_CHAT_", extra="ignore")
    yaml_section = "chat"

    dlp_timeout_seconds: float = 5.0
    provider_timeout_seconds: float = 120.0
    default_context_window: int = 8192
    assistant_cache_seconds: float = 30.0
    # Days chat content is returned; None: from `retention:` (purpose `chat`) in schleuse.yaml, else forever.
    retention_days: int | None = None
    retention_purpose: str = "chat"
    export_limit: int = 10_000
