"""One provider call end to end: route, limit, break, fall back, time out, count, price."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from schleuse_common.contracts.providers import GenerateChunk, GenerateRequest, Routing, Usage
from schleuse_providers.adapters.base import ProviderAdapter
from schleuse_providers.domain.cost import cost_of_usage
from schleuse_providers.domain.errors import (
    AuthenticationFailed,
    MalformedResponse,
    ProviderError,
    RateLimited,
    Saturated,
    Unavailable,
    UpstreamTimeout,
)
from schleuse_providers.domain.model import Catalogue, ModelSpec, ProviderSpec, Timeouts
from schleuse_providers.domain.resilience import (
    CircuitBreaker,
    ConcurrencyLimiter,
    RetryPolicy,
    backoff_delay,
)
from schleuse_providers.domain.routing import Route, RouteRequest, route
from schleuse_providers.domain.tokens import CharEstimate, TokenCounter, count_messages

# Errors that say the provider is unwell (open the breaker); 429 and auth errors do not.
_BREAKER_ERRORS = (Unavailable, UpstreamTimeout, MalformedResponse)


@dataclass
class CallOutcome:
    """What one generate call did, for `usage.recorded` (ids only, no content)."""

    routing: Routing | None
    usage: Usage
    cost: float
    currency: str
    latency_ms: float
    status: str
    error_code: str | None = None


OnFinished = Callable[[CallOutcome], Awaitable[None]]
AdapterFactory = Callable[[ProviderSpec], ProviderAdapter]


@dataclass
class Dispatcher:
    """Holds the live catalogue and one adapter, breaker and limiter per provider."""

    catalogue: Catalogue
    adapter_factory: AdapterFactory
    counter: TokenCounter = field(default_factory=CharEstimate)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)
    breaker_threshold: int = 5
    breaker_reset: float = 30.0
    adapters: dict[str, ProviderAdapter] = field(default_factory=dict)
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    limiters: dict[str, ConcurrencyLimiter] = field(default_factory=dict)
    _retired: list[ProviderAdapter] = field(default_factory=list)

    async def replace_catalogue(self, catalogue: Catalogue) -> None:
        """Swap in a reloaded catalogue (e.g. a rotated key); changed providers get fresh adapters."""
        stale = [
            name
            for name, spec in self.catalogue.providers.items()
            if catalogue.providers.get(name) != spec or name not in catalogue.providers
        ]
        self.catalogue = catalogue
        for name in stale:
            self.breakers.pop(name, None)
            self.limiters.pop(name, None)  # calls in flight keep the old limiter until they finish
            adapter = self.adapters.pop(name, None)
            if adapter is not None:
                self._retired.append(adapter)  # closed later: calls in flight may still use it

    async def close_retired(self) -> None:
        """Close adapters replaced by a reload (call after a grace period)."""
        retired, self._retired = self._retired, []
        for adapter in retired:
            await adapter.aclose()

    async def aclose(self) -> None:
        for adapter in [*self.adapters.values(), *self._retired]:
            await adapter.aclose()
        self.adapters.clear()
        self._retired.clear()

    def decide(self, request: GenerateRequest) -> tuple[Route, int]:
        """Routing only (also used by budget estimates): the route and the prompt's token count."""
        prompt_tokens = count_messages(self.counter, request.messages)
        decision = route(
            self.catalogue,
            RouteRequest(
                requested=request.model,
                prompt_tokens=prompt_tokens,
                max_tokens=request.max_tokens,
                department=request.department,
                assistant_id=request.assistant_id,
                allow_escalation=request.allow_escalation,
            ),
        )
        return decision, prompt_tokens

    async def generate(
        self,
        request: GenerateRequest,
        on_finished: OnFinished | None = None,
        decided: tuple[Route, int] | None = None,
    ) -> AsyncIterator[GenerateChunk]:
        """Stream the answer; falls back only before the first chunk (never mixes two models' text).

        `decided` is a routing decision made before (the budget check needs it), so it is not made twice.
        """
        started = time.perf_counter()
        decision, prompt_tokens = decided or self.decide(request)
        catalogue = self.catalogue
        routing: Routing | None = None
        last_error: ProviderError | None = None
        try:
            for index, model in enumerate(decision.chain):
                provider = catalogue.provider_of(model)
                reason = (
                    decision.reason
                    if index == 0
                    else f"{decision.reason};fallback_after={last_error and last_error.code}"
                )
                routing = Routing(
                    requested=decision.requested,
                    provider=provider.name,
                    model=model.id,
                    reason=reason,
                    demo=provider.demo,
                )
                try:
                    final: GenerateChunk | None = None
                    attempts = self._attempts(model, provider, request, routing, prompt_tokens)
                    async with aclosing(attempts):
                        async for chunk in attempts:
                            final = chunk
                            yield chunk
                    assert final is not None and final.routing is not None
                    await _notify(on_finished, _outcome(routing, final, started, "ok"))
                    return
                except _Fallback as fb:
                    last_error = fb.error
            assert last_error is not None
            raise last_error
        except ProviderError as error:
            await _notify(on_finished, _error_outcome(routing, started, error))
            raise
        except BaseException:
            await _notify(on_finished, _error_outcome(routing, started, None))
            raise

    async def _attempts(
        self,
        model: ModelSpec,
        provider: ProviderSpec,
        request: GenerateRequest,
        routing: Routing,
        prompt_tokens: int,
    ) -> AsyncGenerator[GenerateChunk, None]:
        breaker = self._breaker(provider)
        limiter = self._limiter(provider)
        error: ProviderError | None = None
        for attempt in range(1, self.retry.attempts_per_model + 1):
            if attempt > 1:
                assert error is not None
                await self.sleep(backoff_delay(self.retry, attempt - 1, self.rng, error.retry_after))
            emitted = False
            try:
                breaker.before_call()
                async with limiter.slot():
                    stream = _timed(self._adapter(provider).stream(model, request), provider)
                    priced = self._priced(stream, model, routing, prompt_tokens)
                    async with aclosing(priced):
                        async for chunk in priced:
                            emitted = emitted or chunk.finish_reason is None
                            yield chunk
                breaker.record_success()
                return
            except ProviderError as exc:
                error = exc
                error.provider = error.provider or provider.name
                if isinstance(exc, _BREAKER_ERRORS):
                    breaker.record_failure()
                else:
                    breaker.release_trial()
                if emitted or not exc.fallback:
                    raise
                if isinstance(exc, Saturated | AuthenticationFailed) or not isinstance(
                    exc, RateLimited | Unavailable | UpstreamTimeout
                ):
                    break  # waiting longer on this provider will not help
            except BaseException:
                breaker.release_trial()
                raise
        assert error is not None
        raise _Fallback(error)

    async def _priced(
        self,
        stream: AsyncIterator[GenerateChunk],
        model: ModelSpec,
        routing: Routing,
        prompt_tokens: int,
    ) -> AsyncGenerator[GenerateChunk, None]:
        pieces: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                if chunk.finish_reason is not None:
                    finish = chunk.finish_reason
                if chunk.delta or chunk.tool_calls:
                    pieces.append(chunk.delta)
                    for call in chunk.tool_calls or []:
                        pieces.append(str((call.get("function") or {}).get("arguments") or ""))
                    yield GenerateChunk(delta=chunk.delta, tool_calls=chunk.tool_calls)
        finally:
            await _aclose(stream)
        if usage is None or (usage.prompt_tokens == 0 and usage.completion_tokens == 0):
            completion = self.counter.count("".join(pieces))
            usage = Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion,
                total_tokens=prompt_tokens + completion,
                estimated=True,
            )
        elif usage.total_tokens == 0:
            usage = usage.model_copy(update={"total_tokens": usage.prompt_tokens + usage.completion_tokens})
        final = GenerateChunk(
            finish_reason=finish or "stop",
            usage=usage,
            routing=routing,
            cost=cost_of_usage(model, usage),
            currency=model.currency,
        )
        yield final

    def _adapter(self, provider: ProviderSpec) -> ProviderAdapter:
        adapter = self.adapters.get(provider.name)
        if adapter is None:
            adapter = self.adapters[provider.name] = self.adapter_factory(provider)
        return adapter

    def _breaker(self, provider: ProviderSpec) -> CircuitBreaker:
        breaker = self.breakers.get(provider.name)
        if breaker is None:
            breaker = self.breakers[provider.name] = CircuitBreaker(
                provider.name, threshold=self.breaker_threshold, reset_after=self.breaker_reset
            )
        return breaker

    def _limiter(self, provider: ProviderSpec) -> ConcurrencyLimiter:
        limiter = self.limiters.get(provider.name)
        if limiter is None:
            limiter = self.limiters[provider.name] = ConcurrencyLimiter(
                provider.name, provider.max_concurrency, provider.max_queue, provider.queue_timeout
            )
        return limiter


class _Fallback(Exception):
    def __init__(self, error: ProviderError) -> None:
        super().__init__(error.code)
        self.error = error


async def _timed(stream: AsyncIterator[GenerateChunk], provider: ProviderSpec) -> AsyncIterator[GenerateChunk]:
    """First-token and total timeouts around an adapter stream."""
    timeouts: Timeouts = provider.timeouts
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeouts.total
    first = True
    iterator = aiter(stream)
    try:
        while True:
            limit = min(deadline, loop.time() + timeouts.first_token) if first else deadline
            try:
                async with asyncio.timeout_at(limit):
                    chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            except TimeoutError:
                which = "first token" if first else "total"
                raise UpstreamTimeout(f"{which} timeout of provider {provider.name}", provider=provider.name) from None
            first = False
            yield chunk
    finally:
        await _aclose(iterator)


async def _aclose(stream: AsyncIterator[GenerateChunk]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


def _outcome(routing: Routing, final: GenerateChunk, started: float, status: str) -> CallOutcome:
    return CallOutcome(
        routing=routing,
        usage=final.usage or Usage(),
        cost=final.cost or 0.0,
        currency=final.currency or "EUR",
        latency_ms=(time.perf_counter() - started) * 1000,
        status=status,
    )


def _error_outcome(routing: Routing | None, started: float, error: ProviderError | None) -> CallOutcome:
    return CallOutcome(
        routing=routing,
        usage=Usage(),
        cost=0.0,
        currency="EUR",
        latency_ms=(time.perf_counter() - started) * 1000,
        status="error",
        error_code=error.code if error else "cancelled",
    )


async def _notify(on_finished: OnFinished | None, outcome: CallOutcome) -> None:
    if on_finished is not None:
        await on_finished(outcome)
