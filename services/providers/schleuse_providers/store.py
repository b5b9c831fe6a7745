"""The `providers` schema: providers (secrets encrypted), the model catalogue with prices, routing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from schleuse_common.crypto import DataKeyring, data_keys_table, decrypt_text, encrypt_text
from schleuse_providers.config import SECRET_FIELDS, ModelConfig, ProviderConfig, RegistryConfig, RoutingConfig
from schleuse_providers.domain.secrets import mask

metadata = MetaData(schema="providers")
data_keys = data_keys_table(metadata)

providers = Table(
    "providers",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("settings", JSON, nullable=False),  # everything but models and secrets
    Column("secrets", Text),  # AES-256-GCM under the provider's data key, aad = provider name
    Column("secrets_masked", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default="true"),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

models = Table(
    "models",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("provider", String(100), nullable=False, index=True),
    Column("upstream_model", String(200), nullable=False),
    Column("context_window", Integer, nullable=False),
    Column("input_per_1m", Float, nullable=False),
    Column("output_per_1m", Float, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("capabilities", JSON, nullable=False),
    Column("max_output_tokens", Integer),
    Column("enabled", Boolean, nullable=False, server_default="true"),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

routing = Table(
    "routing",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("config", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

registry_meta = Table(
    "registry_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("version", BigInteger, nullable=False, server_default="0"),
)

_PROVIDER_EXCLUDE = {"models", *SECRET_FIELDS}


def _owner(name: str) -> str:
    return f"provider:{name}"


def fingerprint(config: RegistryConfig) -> str:
    """A hash of the YAML registry, so a restart re-seeds only when the file changed."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()


async def bump_version(session: AsyncSession) -> int:
    """Mark the registry changed (every replica's refresh compares this number)."""
    stmt = (
        insert(registry_meta)
        .values(key="version", value="", version=1)
        .on_conflict_do_update(index_elements=["key"], set_={"version": registry_meta.c.version + 1})
        .returning(registry_meta.c.version)
    )
    return int((await session.execute(stmt)).scalar_one())


async def version(session: AsyncSession) -> int:
    row = (await session.execute(select(registry_meta.c.version).where(registry_meta.c.key == "version"))).first()
    return int(row.version) if row else 0


async def upsert_provider(
    session: AsyncSession, keyring: DataKeyring, config: ProviderConfig, *, replace_models: bool = True
) -> bool:
    """Create or replace a provider (and its models unless `replace_models` is off); secrets given replace
    the stored ones, secrets left out are kept. True when the provider is new."""
    existed = (await session.execute(select(providers.c.name).where(providers.c.name == config.name))).first()
    settings = config.model_dump(exclude=_PROVIDER_EXCLUDE)
    values: dict[str, Any] = {"kind": config.kind, "settings": settings, "enabled": config.enabled}
    secrets = config.secrets()
    if secrets:
        key = await keyring.for_owner(session, _owner(config.name))
        values["secrets"] = encrypt_text(key.key, json.dumps(secrets), aad=config.name)
        values["secrets_masked"] = {k: mask(v) for k, v in secrets.items()}
    stmt = insert(providers).values(**{"name": config.name, "secrets_masked": {}, **values})
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["name"], set_={**values, "updated_at": func.now()})
    )
    if replace_models:
        await session.execute(delete(models).where(models.c.provider == config.name))
        for model in config.models:
            await upsert_model(session, config.name, model, bump=False)
    await bump_version(session)
    return existed is None


async def upsert_model(session: AsyncSession, provider: str, model: ModelConfig, *, bump: bool = True) -> None:
    """Create or replace one catalogue model (context window, prices, capabilities)."""
    values = {**model.model_dump(exclude={"id"}), "provider": provider}
    stmt = insert(models).values(id=model.id, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={**values, "updated_at": func.now()}))
    if bump:
        await bump_version(session)


async def set_routing(session: AsyncSession, config: RoutingConfig) -> None:
    stmt = insert(routing).values(id=1, config=config.model_dump())
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"], set_={"config": config.model_dump(), "updated_at": func.now()}
        )
    )
    await bump_version(session)


async def delete_provider(session: AsyncSession, keyring: DataKeyring, name: str) -> None:
    """Remove a provider, its models and its secrets (the data key is shredded too)."""
    await session.execute(delete(models).where(models.c.provider == name))
    await session.execute(delete(providers).where(providers.c.name == name))
    await keyring.shred(session, _owner(name))
    await bump_version(session)


async def seed(session: AsyncSession, keyring: DataKeyring, config: RegistryConfig) -> bool:
    """Apply the YAML registry when it changed since the last seed; True when it did."""
    mark = fingerprint(config)
    row = (await session.execute(select(registry_meta.c.value).where(registry_meta.c.key == "seed"))).first()
    if row is not None and row.value == mark:
        return False
    for provider in config.providers:
        await upsert_provider(session, keyring, provider)
    if config.routing.default or config.routing.large:
        await set_routing(session, config.routing)
    stmt = insert(registry_meta).values(key="seed", value=mark)
    await session.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": mark}))
    return True


@dataclass(frozen=True)
class LoadedRegistry:
    config: RegistryConfig
    secrets: dict[str, dict[str, str]]
    version: int


async def load(session: AsyncSession, keyring: DataKeyring) -> LoadedRegistry:
    """The whole registry with decrypted secrets (kept in memory only)."""
    model_rows = (await session.execute(select(models))).mappings().all()
    by_provider: dict[str, list[ModelConfig]] = {}
    for row in model_rows:
        data = {k: v for k, v in row.items() if k not in ("provider", "updated_at")}
        by_provider.setdefault(row["provider"], []).append(ModelConfig.model_validate(data))
    configs: list[ProviderConfig] = []
    secrets: dict[str, dict[str, str]] = {}
    for row in (await session.execute(select(providers).order_by(providers.c.name))).mappings().all():
        name = row["name"]
        if row["secrets"]:
            key = await keyring.for_owner(session, _owner(name))
            secrets[name] = json.loads(decrypt_text(key.key, row["secrets"], aad=name))
        data = {**row["settings"], "name": name, "kind": row["kind"], "enabled": row["enabled"]}
        configs.append(ProviderConfig.model_validate({**data, "models": by_provider.get(name, [])}))
    route_row = (await session.execute(select(routing.c.config).where(routing.c.id == 1))).first()
    route = RoutingConfig.model_validate(route_row.config) if route_row else RoutingConfig()
    return LoadedRegistry(RegistryConfig(providers=configs, routing=route), secrets, await version(session))


async def masked_providers(session: AsyncSession) -> list[dict[str, Any]]:
    """Providers as an admin may see them: settings and masked secrets (`sk-a****wxyz`), never the keys."""
    rows = (await session.execute(select(providers).order_by(providers.c.name))).mappings().all()
    return [
        {"name": r["name"], "kind": r["kind"], "enabled": r["enabled"], **r["settings"], "secrets": r["secrets_masked"]}
        for r in rows
    ]


async def provider_rows(session: AsyncSession) -> list[dict[str, Any]]:
    """Providers as an admin may see them: settings, masked secrets, model ids; never the keys."""
    model_ids: dict[str, list[str]] = {}
    for row in (await session.execute(select(models.c.id, models.c.provider).order_by(models.c.id))).all():
        model_ids.setdefault(row.provider, []).append(row.id)
    rows = (await session.execute(select(providers).order_by(providers.c.name))).mappings().all()
    return [
        {
            **r["settings"],
            "name": r["name"],
            "kind": r["kind"],
            "enabled": r["enabled"],
            "secrets": r["secrets_masked"],
            "models": model_ids.get(r["name"], []),
            "updated_at": r["updated_at"],
        }
        for r in rows
    ]


async def provider_exists(session: AsyncSession, name: str) -> bool:
    return (await session.execute(select(providers.c.name).where(providers.c.name == name))).first() is not None


async def model_rows(session: AsyncSession) -> list[dict[str, Any]]:
    """The model catalogue with prices, in id order."""
    return [dict(r) for r in (await session.execute(select(models).order_by(models.c.id))).mappings().all()]


async def delete_model(session: AsyncSession, model_id: str) -> bool:
    result = await session.execute(delete(models).where(models.c.id == model_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    await bump_version(session)
    return True


async def routing_config(session: AsyncSession) -> RoutingConfig:
    row = (await session.execute(select(routing.c.config).where(routing.c.id == 1))).first()
    return RoutingConfig.model_validate(row.config) if row else RoutingConfig()
