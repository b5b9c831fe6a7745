"""Entry point: `python -m schleuse_providers` or `schleuse-providers`."""

from __future__ import annotations

from pathlib import Path

from schleuse_common import service
from schleuse_common.crypto import DataKeyring
from schleuse_common.service import Runtime, ServiceSpec
from schleuse_common.settings import load_yaml_config
from schleuse_providers import store
from schleuse_providers.handlers import ProvidersService
from schleuse_providers.settings import ProvidersSettings

SPEC = ServiceSpec(
    name="providers",
    schema="providers",
    migrations=Path(__file__).parent.parent / "migrations",
)


async def wire(rt: Runtime) -> None:
    assert rt.db is not None
    assert isinstance(rt.settings, ProvidersSettings)
    providers = ProvidersService(rt.bus, rt.db, DataKeyring(store.data_keys, rt.kek), rt.settings)
    await providers.start(load_yaml_config())
    rt.spawn(providers.refresh_forever(), "providers-registry-refresh")
    rt.cleanups.append(providers.close)


def main() -> None:
    service.main(SPEC, ProvidersSettings, wire)


if __name__ == "__main__":
    main()
