"""Settings: environment first, then schleuse.yaml, then defaults; each service under its own prefix."""

from pathlib import Path

import pytest
from pydantic_settings import SettingsConfigDict

from schleuse_common.settings import InfraSettings, ServiceSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SCHLEUSE_DEMO_", extra="ignore")
    yaml_section = "demo"
    greeting: str = "Hallo"
    limit: int = 1


def test_env_beats_yaml_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "schleuse.yaml"
    cfg.write_text("redis_url: redis://yaml:6379/0\ndemo:\n  greeting: Moin\n  limit: 5\n")
    monkeypatch.setenv("SCHLEUSE_CONFIG", str(cfg))
    monkeypatch.setenv("SCHLEUSE_DEMO_LIMIT", "9")
    monkeypatch.delenv("SCHLEUSE_REDIS_URL", raising=False)
    s = DemoSettings()
    assert (s.greeting, s.limit) == ("Moin", 9)
    assert InfraSettings().redis_url == "redis://yaml:6379/0"
    monkeypatch.setenv("SCHLEUSE_REDIS_URL", "redis://env:6379/0")
    assert InfraSettings().redis_url == "redis://env:6379/0"
