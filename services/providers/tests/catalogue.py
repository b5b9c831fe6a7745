"""Test catalogues built in code."""

from schleuse_providers.domain.model import (
    AliasTargets,
    Catalogue,
    ModelSpec,
    ProviderSpec,
    RoutingPolicy,
    Timeouts,
)


def catalogue(
    *,
    base_url: str = "http://127.0.0.1:1/v1",
    backup_url: str | None = None,
    small_context: int = 1000,
    timeouts: Timeouts | None = None,
    max_concurrency: int = 5,
    max_queue: int = 2,
    queue_timeout: float = 0.2,
    **routing: object,
) -> Catalogue:
    t = timeouts or Timeouts(connect=1, first_token=2, total=5)
    providers = {
        "main": ProviderSpec(
            "main",
            "openai_compatible",
            base_url=base_url,
            timeouts=t,
            max_concurrency=max_concurrency,
            max_queue=max_queue,
            queue_timeout=queue_timeout,
        ),
        "backup": ProviderSpec("backup", "demo", base_url=backup_url or base_url, timeouts=t),
    }
    models = {
        "small": ModelSpec("small", "main", "small-up", small_context, 0.15, 0.60, "EUR"),
        "large": ModelSpec("large", "main", "large-up", 100_000, 2.5, 10.0, "EUR"),
        "spare": ModelSpec("spare", "backup", "spare-up", 100_000, 0.0, 0.0, "EUR"),
    }
    policy = RoutingPolicy(
        default="small",
        large="large",
        departments=routing.get("departments", {}),  # type: ignore[arg-type]
        assistants=routing.get("assistants", {}),  # type: ignore[arg-type]
        fallbacks=routing.get("fallbacks", {"small": ("spare",), "large": ("spare",)}),  # type: ignore[arg-type]
    )
    return Catalogue(providers=providers, models=models, routing=policy)


__all__ = ["AliasTargets", "catalogue"]
