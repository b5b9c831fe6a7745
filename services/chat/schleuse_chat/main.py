"""Entry point: `python -m schleuse_chat` or `schleuse-chat`."""

from __future__ import annotations

from pathlib import Path

from schleuse_chat import assistants, store
from schleuse_chat.api_handlers import ChatApi
from schleuse_chat.assistants import AssistantCatalog
from schleuse_chat.domain.assistants import chat_retention_days
from schleuse_chat.handlers import ChatHandlers
from schleuse_chat.settings import ChatSettings
from schleuse_common import service
from schleuse_common.crypto import DataKeyring
from schleuse_common.service import Runtime, ServiceSpec
from schleuse_common.settings import load_yaml_config

SPEC = ServiceSpec(name="chat", schema="chat", migrations=Path(__file__).parent.parent / "migrations")


async def wire(rt: Runtime) -> tuple[ChatHandlers, ChatApi]:
    """Seed assistants, then serve turns, persistence, the `/api` subjects and the dataset intake."""
    assert rt.db is not None and isinstance(rt.settings, ChatSettings)
    settings = rt.settings
    config = load_yaml_config()
    if settings.retention_days is None:
        settings.retention_days = chat_retention_days(config, settings.retention_purpose)
    await assistants.seed(rt.db, config)
    catalog = AssistantCatalog(rt.db, ttl=settings.assistant_cache_seconds)
    await catalog.listen(rt.bus)
    keyring = DataKeyring(store.data_keys, rt.kek)
    handlers = ChatHandlers(rt.bus, rt.db, keyring, settings, catalog)
    await handlers.register()
    chat_api = ChatApi(rt.bus, rt.db, keyring, settings, catalog, forget_thread=handlers.forget_thread)
    await chat_api.register()
    return handlers, chat_api


def main() -> None:
    service.main(SPEC, ChatSettings, wire)


if __name__ == "__main__":
    main()
