"""Sliding-window rate limits (the two-window approximation: cheap, one counter per window)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """Which fixed window `now` falls in, and how far into it."""

    index: int
    elapsed: float  # 0..1 of the window

    @classmethod
    def at(cls, now: float, seconds: int) -> Window:
        """The window of `now` (seconds since the epoch) for windows of `seconds`."""
        index = int(now // seconds)
        return cls(index, (now - index * seconds) / seconds)


def estimate(previous: int, current: int, elapsed: float) -> float:
    """Requests within the last window length: the previous window's count weighted by its remaining overlap."""
    return previous * (1.0 - elapsed) + current


def retry_after(previous: int, current: int, elapsed: float, limit: int, seconds: int) -> float | None:
    """Seconds until a request would be admitted again, or None when this one is within `limit`."""
    if estimate(previous, current, elapsed) <= limit:
        return None
    if current > limit:  # this window alone is over: wait for the next one to slide far enough
        return (1.0 - elapsed) * seconds + (1.0 - limit / current) * seconds
    # Only the weighted previous window keeps us over: wait until its weight falls enough.
    needed = (previous + current - limit) / previous
    return max(0.0, needed - elapsed) * seconds
