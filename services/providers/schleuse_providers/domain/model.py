"""The provider catalogue: providers, their models and prices, and the routing policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ProviderKind = Literal["openai", "azure", "anthropic", "bedrock", "openai_compatible", "demo"]
LOCAL_KINDS: frozenset[str] = frozenset({"openai_compatible", "demo"})


def default_concurrency(kind: str) -> int:
    """Seed limits: a local server (Ollama) takes 2 parallel calls, external APIs 5."""
    return 2 if kind == "openai_compatible" else 5


@dataclass(frozen=True)
class Timeouts:
    """Seconds: until the connection stands, until the first token, for the whole call."""

    connect: float = 5.0
    first_token: float = 30.0
    total: float = 300.0


@dataclass(frozen=True)
class ProviderSpec:
    """One configured upstream (secrets are not part of the domain model)."""

    name: str
    kind: ProviderKind
    base_url: str | None = None
    deployment: str | None = None
    api_version: str | None = None
    region: str | None = None
    proxy: str | None = None
    max_concurrency: int = 5
    max_queue: int = 10
    queue_timeout: float = 10.0
    timeouts: Timeouts = field(default_factory=Timeouts)
    enabled: bool = True
    secret_version: int = 0  # changes when the provider's key is rotated, so its client is rebuilt

    @property
    def demo(self) -> bool:
        return self.kind == "demo"


@dataclass(frozen=True)
class ModelSpec:
    """A catalogue model: our id, the provider's name for it, its context window and prices."""

    id: str
    provider: str
    upstream_model: str
    context_window: int = 8192
    input_per_1m: float = 0.0
    output_per_1m: float = 0.0
    currency: str = "EUR"
    capabilities: frozenset[str] = frozenset({"chat", "stream"})
    max_output_tokens: int | None = None


@dataclass(frozen=True)
class AliasTargets:
    """Which model `default` and `large` mean in one scope (global, a department, an assistant)."""

    default: str | None = None
    large: str | None = None
    allow_escalation: bool | None = None
    requires_large: bool = False
    models: frozenset[str] | None = None  # catalogue models the scope may name; None = every enabled model


@dataclass(frozen=True)
class RoutingPolicy:
    """Aliases globally, per department and per assistant (assistant wins), and fallback chains."""

    default: str
    large: str | None = None
    departments: Mapping[str, AliasTargets] = field(default_factory=dict)
    assistants: Mapping[str, AliasTargets] = field(default_factory=dict)
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Catalogue:
    """Everything routing needs, immutable; a registry reload swaps in a new one."""

    providers: Mapping[str, ProviderSpec]
    models: Mapping[str, ModelSpec]
    routing: RoutingPolicy

    def provider_of(self, model: ModelSpec) -> ProviderSpec:
        return self.providers[model.provider]

    def usable(self, model_id: str) -> ModelSpec | None:
        """The model if it exists and its provider is enabled."""
        model = self.models.get(model_id)
        if model is None:
            return None
        provider = self.providers.get(model.provider)
        return model if provider is not None and provider.enabled else None
