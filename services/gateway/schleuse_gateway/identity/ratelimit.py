"""Rate limits per user and per API key: sliding windows in Redis, one pipelined round trip per request."""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from schleuse_gateway.domain.ratelimit import Window, retry_after

PREFIX = "gw:rl:"


@dataclass
class RateLimiter:
    """Counts requests per bucket (`user:<id>`, `key:<id>`) in fixed windows and weighs the previous one."""

    redis: Redis
    window_seconds: int = 60

    async def hit(self, buckets: list[tuple[str, int]]) -> float | None:
        """Count one request in every bucket; seconds to wait when any is over its limit, else None."""
        buckets = [(b, limit) for b, limit in buckets if limit > 0]
        if not buckets:
            return None
        window = Window.at(time.time(), self.window_seconds)
        async with self.redis.pipeline(transaction=False) as pipe:
            for bucket, _ in buckets:
                current = f"{PREFIX}{bucket}:{window.index}"
                pipe.incr(current)
                pipe.expire(current, self.window_seconds * 2)
                pipe.get(f"{PREFIX}{bucket}:{window.index - 1}")
            results = await pipe.execute()
        wait: float | None = None
        for i, (_, limit) in enumerate(buckets):
            current, previous = int(results[3 * i]), int(results[3 * i + 2] or 0)
            after = retry_after(previous, current, window.elapsed, limit, self.window_seconds)
            if after is not None:
                wait = max(wait or 0.0, after)
        return wait
