"""One settings loader: environment variables first, then an optional `schleuse.yaml`, then defaults."""

from __future__ import annotations

import os
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

CONFIG_ENV = "SCHLEUSE_CONFIG"
DEFAULT_CONFIG = "schleuse.yaml"


def config_path() -> Path:
    """The YAML file settings are read from (`SCHLEUSE_CONFIG`, else ./schleuse.yaml)."""
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))


def load_yaml_config() -> dict[str, Any]:
    """The whole `schleuse.yaml` as a dict, empty when there is none."""
    import yaml

    path = config_path()
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping at the top level")
    return data


class _YamlSection(YamlConfigSettingsSource):
    """Reads one top-level section of schleuse.yaml (or the top level for infrastructure)."""

    def __init__(self, settings_cls: type[BaseSettings], section: str | None) -> None:
        self._section = section
        super().__init__(settings_cls, yaml_file=config_path())

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        data = super()._read_file(file_path)
        if self._section is None:
            return {k: v for k, v in data.items() if not isinstance(v, dict | list)}
        section = data.get(self._section) or {}
        return section if isinstance(section, dict) else {}


class _Base(BaseSettings):
    yaml_section: ClassVar[str | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_source = _YamlSection(settings_cls, cls.yaml_section)
        return (init_settings, env_settings, yaml_source, file_secret_settings)


class InfraSettings(_Base):
    """Where the shared infrastructure is; one set for all services (prefix `SCHLEUSE_`)."""

    model_config = SettingsConfigDict(env_prefix="SCHLEUSE_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/schleuse"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_file: Path = Path(".dev/keys/kek.key")
    internal_key_file: Path = Path(".dev/keys/internal.key")
    vault_url: str | None = None
    vault_token: str | None = None
    vault_transit_key: str = "schleuse"
    otlp_endpoint: str | None = None
    log_level: str = "INFO"
    log_json: bool = True
    environment: str = "dev"


class ServiceSettings(_Base):
    """Base of each service's settings; subclasses set `env_prefix="SCHLEUSE_<NAME>_"` and `yaml_section`."""

    model_config = SettingsConfigDict(env_prefix="SCHLEUSE_SERVICE_", extra="ignore")

    infra: InfraSettings = Field(default_factory=InfraSettings)
    health_host: str = "127.0.0.1"
    health_port: int = 0
    instance: str = Field(default_factory=lambda: f"{os.getpid()}")


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build settings of `cls` from env, schleuse.yaml and `overrides`."""
    return cls(**overrides)
