"""Staying up when providers are not: backoff with jitter, a circuit breaker, a bounded concurrency limit."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from schleuse_providers.domain.errors import CircuitOpen, Saturated

Clock = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per model before moving down the fallback chain, and the backoff between attempts."""

    attempts_per_model: int = 2
    base_delay: float = 0.2
    max_delay: float = 5.0
    max_retry_after: float = 10.0


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter for attempt 1, 2, ...; a provider's Retry-After is a floor."""
    ceiling = min(policy.max_delay, policy.base_delay * (2 ** (attempt - 1)))
    delay = rng.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.max_retry_after))
    return delay


BreakerState = Literal["closed", "open", "half_open"]


@dataclass
class CircuitBreaker:
    """Opens after `threshold` consecutive failures, lets one trial through after `reset_after` seconds."""

    provider: str
    threshold: int = 5
    reset_after: float = 30.0
    clock: Clock = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    trial_running: bool = False

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.reset_after:
            return "half_open"
        return "open"

    def before_call(self) -> None:
        """Raise CircuitOpen unless a call may go out now."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self.trial_running:
            self.trial_running = True
            return
        assert self.opened_at is not None
        retry = max(0.0, self.reset_after - (self.clock() - self.opened_at))
        raise CircuitOpen(
            f"provider {self.provider} is failing; circuit open",
            provider=self.provider,
            retry_after=retry or 1.0,
        )

    def record_success(self) -> None:
        self.failures, self.opened_at, self.trial_running = 0, None, False

    def record_failure(self) -> None:
        self.failures += 1
        if self.trial_running or self.failures >= self.threshold:
            self.opened_at = self.clock()
        self.trial_running = False

    def release_trial(self) -> None:
        """A trial that ended without a verdict (e.g. the caller went away) frees the slot."""
        self.trial_running = False


@dataclass
class ConcurrencyLimiter:
    """At most `limit` calls in flight, `max_queue` waiting (FIFO, `queue_timeout` each): never unbounded."""

    provider: str
    limit: int
    max_queue: int = 10
    queue_timeout: float = 10.0
    in_flight: int = 0
    _waiters: deque[asyncio.Future[None]] = field(default_factory=deque)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _saturated(self) -> Saturated:
        return Saturated(
            f"provider {self.provider} is at its concurrency limit ({self.limit}) and its queue is full",
            provider=self.provider,
            retry_after=max(1.0, self.queue_timeout / 2),
        )

    async def acquire(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        if len(self._waiters) >= self.max_queue:
            raise self._saturated()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.queue_timeout)
        except TimeoutError:
            if waiter.done():  # handed a slot just as the timeout fired: give it on
                self.release()
            else:
                waiter.cancel()
            raise self._saturated() from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()
            else:
                waiter.cancel()
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self) -> None:
        """Hand the slot to the next live waiter, or free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; in_flight stays the same
                return
        self.in_flight -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()
