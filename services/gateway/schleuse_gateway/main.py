"""Entry point: `python -m schleuse_gateway` or `schleuse-gateway`."""

from __future__ import annotations

from pathlib import Path

from schleuse_common import service
from schleuse_common.service import Runtime, ServiceSpec
from schleuse_gateway.app import create_asgi
from schleuse_gateway.settings import GatewaySettings

SPEC = ServiceSpec(
    name="gateway", schema="gateway", migrations=Path(__file__).parent.parent / "migrations", uses_redis=True
)


async def wire(rt: Runtime) -> None:
    """The gateway serves HTTP only; its bus use is as a client."""


def main() -> None:
    service.main(SPEC, GatewaySettings, wire, app=create_asgi)


if __name__ == "__main__":
    main()
