"""Rate limits per user and per API key: sliding windows in Redis, one script call per request."""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from schleuse_gateway.domain.ratelimit import Window, retry_after

PREFIX = "gw:rl:"

# KEYS: current and previous window of each bucket; returns the counts, current first, per bucket.
HIT = """
local out = {}
for i = 1, #KEYS, 2 do
  local current = redis.call('INCR', KEYS[i])
  if current == 1 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
  out[#out + 1] = current
  out[#out + 1] = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
end
return out
"""


@dataclass
class RateLimiter:
    """Counts requests per bucket (`user:<id>`, `key:<id>`) in fixed windows and weighs the previous one."""

    redis: Redis
    window_seconds: int = 60

    def __post_init__(self) -> None:
        self._hit = self.redis.register_script(HIT)  # EVALSHA, loaded on first use

    async def hit(self, buckets: list[tuple[str, int]]) -> float | None:
        """Count one request in every bucket; seconds to wait when any is over its limit, else None."""
        buckets = [(b, limit) for b, limit in buckets if limit > 0]
        if not buckets:
            return None
        window = Window.at(time.time(), self.window_seconds)
        keys = [f"{PREFIX}{b}:{index}" for b, _ in buckets for index in (window.index, window.index - 1)]
        results = await self._hit(keys=keys, args=[self.window_seconds * 2])
        wait: float | None = None
        for i, (_, limit) in enumerate(buckets):
            current, previous = int(results[2 * i]), int(results[2 * i + 1])
            after = retry_after(previous, current, window.elapsed, limit, self.window_seconds)
            if after is not None:
                wait = max(wait or 0.0, after)
        return wait
