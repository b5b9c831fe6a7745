"""Entry point: `python -m schleuse_governance` or `schleuse-governance`."""

from __future__ import annotations

from pathlib import Path

from schleuse_common import service
from schleuse_common.service import Runtime, ServiceSpec
from schleuse_governance.handlers import GovernanceHandlers
from schleuse_governance.settings import GovernanceSettings

SPEC = ServiceSpec(name="governance", schema="governance", migrations=Path(__file__).parent.parent / "migrations")


async def wire(rt: Runtime) -> None:
    assert rt.db is not None
    await GovernanceHandlers(rt.bus, rt.db).register()


def main() -> None:
    service.main(SPEC, GovernanceSettings, wire)


if __name__ == "__main__":
    main()
