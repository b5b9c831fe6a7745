"""The `providers:` and `routing:` sections of schleuse.yaml, validated, and turned into a catalogue."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from schleuse_providers.domain.model import (
    AliasTargets,
    Catalogue,
    ModelSpec,
    ProviderKind,
    ProviderSpec,
    RoutingPolicy,
    Timeouts,
    default_concurrency,
)

DEMO_PROVIDER = "demo"
DEMO_MODEL = "schleuse-demo"
SECRET_FIELDS = ("api_key", "aws_access_key_id", "aws_secret_access_key", "aws_session_token")


class ModelConfig(BaseModel):
    id: str
    upstream_model: str = ""
    context_window: int = 8192
    input_per_1m: float = 0.0
    output_per_1m: float = 0.0
    currency: str = "EUR"
    capabilities: list[str] = Field(default_factory=lambda: ["chat", "stream"])
    max_output_tokens: int | None = None
    enabled: bool = True


class ProviderConfig(BaseModel):
    name: str
    kind: ProviderKind
    base_url: str | None = None
    api_key: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    deployment: str | None = None
    api_version: str | None = None
    region: str | None = None
    proxy: str | None = None
    max_concurrency: int | None = None
    max_queue: int = 10
    queue_timeout: float = 10.0
    connect_timeout: float = 5.0
    first_token_timeout: float = 30.0
    total_timeout: float = 300.0
    enabled: bool = True
    models: list[ModelConfig] = Field(default_factory=list)

    def secrets(self) -> dict[str, str]:
        return {name: value for name in SECRET_FIELDS if (value := getattr(self, name))}

    def spec(self) -> ProviderSpec:
        return ProviderSpec(
            name=self.name,
            kind=self.kind,
            base_url=self.base_url,
            deployment=self.deployment,
            api_version=self.api_version,
            region=self.region,
            proxy=self.proxy,
            max_concurrency=self.max_concurrency or default_concurrency(self.kind),
            max_queue=self.max_queue,
            queue_timeout=self.queue_timeout,
            timeouts=Timeouts(self.connect_timeout, self.first_token_timeout, self.total_timeout),
            enabled=self.enabled,
        )


class ScopeConfig(BaseModel):
    default: str | None = None
    large: str | None = None
    allow_escalation: bool | None = None
    requires_large: bool = False
    models: list[str] | None = None  # catalogue models the scope may name explicitly; None = all

    def targets(self) -> AliasTargets:
        data = self.model_dump(exclude={"models"})
        return AliasTargets(**data, models=None if self.models is None else frozenset(self.models))


class RoutingConfig(BaseModel):
    default: str | None = None
    large: str | None = None
    departments: dict[str, ScopeConfig] = Field(default_factory=dict)
    assistants: dict[str, ScopeConfig] = Field(default_factory=dict)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)


class RegistryConfig(BaseModel):
    """Everything the registry holds: providers with their models, and routing."""

    providers: list[ProviderConfig] = Field(default_factory=list)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)


def from_yaml(data: dict[str, Any]) -> RegistryConfig:
    """The registry part of a parsed schleuse.yaml."""
    return RegistryConfig.model_validate(
        {"providers": data.get("providers") or [], "routing": data.get("routing") or {}}
    )


def demo_config(demo_url: str) -> RegistryConfig:
    """The registry when nothing is configured: the bundled demo provider, loudly marked demo."""
    model = ModelConfig(id=DEMO_MODEL, upstream_model=DEMO_MODEL, context_window=32_768, currency="EUR")
    provider = ProviderConfig(name=DEMO_PROVIDER, kind="demo", base_url=demo_url, max_concurrency=50, models=[model])
    return RegistryConfig(providers=[provider], routing=RoutingConfig(default=DEMO_MODEL, large=DEMO_MODEL))


def catalogue_of(config: RegistryConfig) -> Catalogue:
    """Build the immutable catalogue; routing defaults to the first model when not given."""
    providers = {p.name: p.spec() for p in config.providers}
    models = {
        m.id: ModelSpec(
            id=m.id,
            provider=p.name,
            upstream_model=m.upstream_model or ("" if p.kind == "azure" else m.id),
            context_window=m.context_window,
            input_per_1m=m.input_per_1m,
            output_per_1m=m.output_per_1m,
            currency=m.currency,
            capabilities=frozenset(m.capabilities),
            max_output_tokens=m.max_output_tokens,
        )
        for p in config.providers
        for m in p.models
        if m.enabled
    }
    usable = [m.id for p in config.providers if p.enabled for m in p.models if m.enabled]
    if not usable:
        raise ValueError("the provider registry has no enabled model")
    r = config.routing
    default = r.default or usable[0]
    policy = RoutingPolicy(
        default=default,
        large=r.large,
        departments={k: v.targets() for k, v in r.departments.items()},
        assistants={k: v.targets() for k, v in r.assistants.items()},
        fallbacks={k: tuple(v) for k, v in r.fallbacks.items()},
    )
    for name in [default, r.large, *(x for chain in r.fallbacks.values() for x in chain)]:
        if name is not None and name not in models:
            raise ValueError(f"routing names unknown model {name!r}")
    return Catalogue(providers=providers, models=models, routing=policy)


def unknown_routing_names(config: RegistryConfig) -> list[str]:
    """Model ids the routing names that the catalogue lacks (admin changes must not leave any)."""
    known = {m.id for p in config.providers for m in p.models}
    r = config.routing
    scopes = [*r.departments.values(), *r.assistants.values()]
    named = [r.default, r.large, *r.fallbacks, *(x for chain in r.fallbacks.values() for x in chain)]
    named += [x for scope in scopes for x in (scope.default, scope.large, *(scope.models or []))]
    return sorted({name for name in named if name is not None and name not in known})
