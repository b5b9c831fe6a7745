"""Entry point: `python -m schleuse_dlp` or `schleuse-dlp`."""

from __future__ import annotations

from pathlib import Path

import structlog

from schleuse_common import service
from schleuse_common.crypto import DataKeyring
from schleuse_common.service import Runtime, ServiceSpec
from schleuse_dlp import store
from schleuse_dlp.domain.analyzer import Analyzer, build_default_analyzer
from schleuse_dlp.handlers import DlpHandlers
from schleuse_dlp.settings import DlpSettings

SPEC = ServiceSpec(name="dlp", schema="dlp", migrations=Path(__file__).parent.parent / "migrations")
log = structlog.get_logger("schleuse.dlp")


def build_analyzer(settings: DlpSettings) -> Analyzer:
    """The detector pipeline; without the NER model file, names come from rules and gazetteers only."""
    if not settings.ner_model.exists():
        log.warning(
            "dlp.ner_model_missing",
            path=str(settings.ner_model),
            effect="person/location/org detection degraded to rules and gazetteers",
            fix="run `make models`",
        )
    return build_default_analyzer(settings.ner_model, use_name_rules=settings.use_name_rules)


async def wire(rt: Runtime) -> None:
    assert rt.db is not None and isinstance(rt.settings, DlpSettings)
    settings = rt.settings
    keyring = DataKeyring(store.data_keys, rt.kek)
    mappings = store.MappingStore(rt.db, keyring, settings.mapping_cache_size, settings.mapping_cache_seconds)
    policies = store.PolicyStore(rt.db, settings.policy_cache_seconds)
    handlers = DlpHandlers(rt.bus, build_analyzer(settings), mappings, policies, settings)
    await handlers.register()


def main() -> None:
    service.main(SPEC, DlpSettings, wire)


if __name__ == "__main__":
    main()
