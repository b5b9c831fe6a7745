"""Pick the adapter for a provider kind; secrets come from the registry's decrypted view."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from schleuse_providers.adapters.base import ProviderAdapter
from schleuse_providers.domain.model import ProviderSpec


def adapter_factory(secrets: Mapping[str, Mapping[str, str]]) -> Callable[[ProviderSpec], ProviderAdapter]:
    """A factory closing over decrypted secrets: {provider: {"api_key": ..., ...}}."""

    def build(spec: ProviderSpec) -> ProviderAdapter:
        secret = secrets.get(spec.name, {})
        if spec.kind in ("openai_compatible", "demo"):
            from schleuse_providers.adapters.compatible import CompatibleAdapter

            return CompatibleAdapter(spec, secret.get("api_key"))
        if spec.kind in ("openai", "azure"):
            from schleuse_providers.adapters.openai import OpenAIAdapter

            return OpenAIAdapter(spec, secret.get("api_key"))
        if spec.kind == "anthropic":
            from schleuse_providers.adapters.anthropic import AnthropicAdapter

            return AnthropicAdapter(spec, secret.get("api_key"))
        if spec.kind == "bedrock":
            from schleuse_providers.adapters.bedrock import BedrockAdapter

            return BedrockAdapter(spec, secret)
        raise ValueError(f"unknown provider kind {spec.kind!r}")

    return build
