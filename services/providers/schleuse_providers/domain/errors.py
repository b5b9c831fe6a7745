"""Typed provider errors; the edge maps them once to a bus error (status, code, retry-after)."""

from __future__ import annotations


class ProviderError(Exception):
    """A provider call failed; `fallback` says whether another model in the chain may be tried."""

    code = "provider_error"
    status = 502
    fallback = False

    def __init__(self, message: str, *, provider: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.retry_after = retry_after


class AuthenticationFailed(ProviderError):
    """The provider refused our credentials (401/403): an admin must fix the key."""

    code = "provider_auth_failed"
    status = 502


class BadRequest(ProviderError):
    """The provider rejected the request itself (400/404/422): retrying elsewhere will not help."""

    code = "provider_bad_request"
    status = 400


class RateLimited(ProviderError):
    """The provider said 429."""

    code = "provider_rate_limited"
    status = 429
    fallback = True


class Unavailable(ProviderError):
    """The provider answered 5xx or could not be reached: the upstream failed, so it is a bad gateway for us."""

    code = "provider_unavailable"
    status = 502
    fallback = True


class UpstreamTimeout(ProviderError):
    """Connect, first-token or total timeout ran out."""

    code = "provider_timeout"
    status = 504
    fallback = True


class MalformedResponse(ProviderError):
    """The provider's answer or stream could not be understood."""

    code = "provider_malformed_response"
    status = 502


class Saturated(ProviderError):
    """Our own concurrency limit for the provider is full and its wait queue too."""

    code = "provider_saturated"
    status = 429
    fallback = True


class CircuitOpen(ProviderError):
    """The provider's circuit breaker is open after repeated failures."""

    code = "provider_circuit_open"
    status = 503
    fallback = True


class RoutingError(ProviderError):
    """No model can serve the request (unknown alias or model, prompt too long for every model)."""

    code = "routing_error"
    status = 400


class UnknownModel(RoutingError):
    code = "unknown_model"
    status = 404


class ContextTooLong(RoutingError):
    code = "context_too_long"
    status = 400


class ModelNotAllowed(RoutingError):
    """The caller's department or assistant may not use the model it named."""

    code = "model_not_allowed"
    status = 403
