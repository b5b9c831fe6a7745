"""`providers.admin.*`: the provider registry as admins manage it (providers, model catalogue, routing).

Answered by the providers service, which owns the registry, checks the admin role again, validates that the
registry still routes, publishes `audit.providers.<action>` and tells its replicas to reload. Secrets are
write-only: requests may carry them, replies only ever show them masked (`sk-a****wxyz`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

PROVIDERS_ADMIN_LIST = "providers.admin.providers.list"
PROVIDERS_ADMIN_PUT = "providers.admin.providers.put"
PROVIDERS_ADMIN_DELETE = "providers.admin.providers.delete"
MODELS_ADMIN_LIST = "providers.admin.models.list"
MODELS_ADMIN_PUT = "providers.admin.models.put"
MODELS_ADMIN_DELETE = "providers.admin.models.delete"
ROUTING_ADMIN_GET = "providers.admin.routing.get"
ROUTING_ADMIN_PUT = "providers.admin.routing.put"

PROVIDERS_AUDIT_AREA = "providers"  # `audit.providers.<provider_saved|provider_deleted|model_saved|...>`

ProviderKind = Literal["openai", "azure", "anthropic", "bedrock", "openai_compatible", "demo"]


class ModelFields(BaseModel):
    """A catalogue model: our id, the provider's name for it, context window, capabilities and prices."""

    id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    upstream_model: str = Field(default="", max_length=200, description="deployment name on Azure")
    context_window: int = Field(default=8192, ge=256)
    input_per_1m: float = Field(default=0.0, ge=0, description="price per 1M prompt tokens")
    output_per_1m: float = Field(default=0.0, ge=0, description="price per 1M completion tokens")
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    capabilities: list[str] = Field(default_factory=lambda: ["chat", "stream"])
    max_output_tokens: int | None = Field(default=None, ge=1)
    enabled: bool = True


class ModelInput(ModelFields):
    provider: str = Field(min_length=1, max_length=100)


class ModelView(ModelInput):
    updated_at: datetime | None = None


class ModelList(BaseModel):
    items: list[ModelView] = Field(default_factory=list)


class ProviderSettings(BaseModel):
    """Everything about a provider but its secrets and models."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: ProviderKind
    base_url: str | None = Field(default=None, max_length=500)
    deployment: str | None = None
    api_version: str | None = None
    region: str | None = None
    proxy: str | None = Field(default=None, max_length=500, description="outbound HTTP(S) proxy")
    max_concurrency: int | None = Field(default=None, ge=1, le=1000)
    max_queue: int = Field(default=10, ge=0, le=10_000)
    queue_timeout: float = Field(default=10.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    first_token_timeout: float = Field(default=30.0, gt=0)
    total_timeout: float = Field(default=300.0, gt=0)
    enabled: bool = True


class ProviderInput(ProviderSettings):
    """Create or replace a provider. Secrets left out keep their stored value; `models` null keeps the models."""

    api_key: str | None = Field(default=None, repr=False, max_length=4000)
    aws_access_key_id: str | None = Field(default=None, repr=False, max_length=200)
    aws_secret_access_key: str | None = Field(default=None, repr=False, max_length=4000)
    aws_session_token: str | None = Field(default=None, repr=False, max_length=8000)
    models: list[ModelFields] | None = None


class ProviderView(ProviderSettings):
    """A provider as an admin sees it: settings, masked secrets, its model ids."""

    secrets: dict[str, str | None] = Field(default_factory=dict, description="masked, e.g. `sk-a****wxyz`")
    models: list[str] = Field(default_factory=list)
    updated_at: datetime | None = None


class ProviderList(BaseModel):
    items: list[ProviderView] = Field(default_factory=list)


class ByName(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class AdminListRequest(BaseModel):
    """No filter yet; a model so the list subjects carry an envelope like every other request."""


class RegistryDeleted(BaseModel):
    name: str
    deleted: bool = True


class RoutingScope(BaseModel):
    """Aliases of one department or assistant; `models` restricts which catalogue models it may name."""

    default: str | None = None
    large: str | None = None
    allow_escalation: bool | None = None
    requires_large: bool = False
    models: list[str] | None = Field(default=None, description="null: every enabled model; [] only its aliases")


class RoutingSettings(BaseModel):
    """Global aliases, per-department and per-assistant overrides, fallback chains."""

    default: str | None = None
    large: str | None = None
    departments: dict[str, RoutingScope] = Field(default_factory=dict)
    assistants: dict[str, RoutingScope] = Field(default_factory=dict)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
