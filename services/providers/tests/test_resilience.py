"""Backoff, circuit breaker, concurrency limiter, cost, masking."""

import asyncio
import random

import pytest

from schleuse_common.contracts.providers import ChatMessage, Usage
from schleuse_providers.domain.cost import cost_of, cost_of_usage, estimate_cost
from schleuse_providers.domain.errors import CircuitOpen, Saturated
from schleuse_providers.domain.model import ModelSpec
from schleuse_providers.domain.resilience import (
    CircuitBreaker,
    ConcurrencyLimiter,
    RetryPolicy,
    backoff_delay,
)
from schleuse_providers.domain.secrets import mask
from schleuse_providers.domain.tokens import CharEstimate, count_messages


def test_backoff_grows_exponentially_with_jitter_and_honours_retry_after():
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0)
    rng = random.Random(7)
    delays = [[backoff_delay(policy, attempt, rng) for _ in range(200)] for attempt in (1, 2, 3, 6)]
    assert [max(d) <= c for d, c in zip(delays, (0.1, 0.2, 0.4, 1.0), strict=True)] == [True] * 4
    assert max(delays[3]) > 0.5 and min(delays[0]) >= 0 and len(set(delays[0])) > 100
    assert backoff_delay(policy, 1, rng, retry_after=3.0) == 3.0
    assert backoff_delay(policy, 1, rng, retry_after=60.0) == policy.max_retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_and_half_opens_for_one_trial():
    clock = Clock()
    breaker = CircuitBreaker("p", threshold=3, reset_after=10, clock=clock)
    for _ in range(3):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as info:
        breaker.before_call()
    assert info.value.retry_after == 10
    clock.now = 10
    breaker.before_call()  # the one trial
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    breaker.record_failure()  # trial failed: open again for a full period
    assert breaker.state == "open"
    clock.now = 20
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.failures == 0


def test_breaker_success_resets_the_failure_count():
    breaker = CircuitBreaker("p", threshold=2, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


async def test_limiter_holds_the_limit_queues_fifo_and_refuses_beyond_the_queue():
    limiter = ConcurrencyLimiter("ollama", limit=2, max_queue=2, queue_timeout=5)
    release = asyncio.Event()
    peak = 0
    order: list[int] = []

    async def call(i: int) -> None:
        nonlocal peak
        async with limiter.slot():
            peak = max(peak, limiter.in_flight)
            order.append(i)
            await release.wait()

    tasks = [asyncio.create_task(call(i)) for i in range(4)]
    await asyncio.sleep(0.01)
    assert (limiter.in_flight, limiter.waiting) == (2, 2)
    with pytest.raises(Saturated) as info:
        await limiter.acquire()
    assert info.value.retry_after and info.value.retry_after >= 1
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 2 and order == [0, 1, 2, 3]
    assert (limiter.in_flight, limiter.waiting) == (0, 0)


async def test_limiter_queue_timeout_gives_saturated_and_leaks_nothing():
    limiter = ConcurrencyLimiter("p", limit=1, max_queue=5, queue_timeout=0.05)
    await limiter.acquire()
    with pytest.raises(Saturated):
        await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limiter.release()
    assert (limiter.in_flight, limiter.waiting) == (0, 0)
    await limiter.acquire()
    assert limiter.in_flight == 1


def test_cost_from_prices_per_million():
    model = ModelSpec("m", "p", "m", input_per_1m=0.15, output_per_1m=0.60, currency="EUR")
    assert cost_of(model, 1_000_000, 0) == 0.15
    assert cost_of(model, 1000, 500) == 0.00045
    assert cost_of_usage(model, Usage(prompt_tokens=2_000_000, completion_tokens=1_000_000)) == 0.9
    assert estimate_cost(model, 1000, 1000) == 0.00075


def test_mask_shows_only_the_edges():
    assert mask("sk-abcdefghijklmnwxyz") == "sk-a****wxyz"
    assert mask("short") == "****"
    assert mask(None) is None


def test_char_estimate_counts_messages():
    messages = [ChatMessage(role="system", content="x" * 40), ChatMessage(role="user", content="y" * 8)]
    assert count_messages(CharEstimate(), messages) == 3 + 4 + 10 + 4 + 2
