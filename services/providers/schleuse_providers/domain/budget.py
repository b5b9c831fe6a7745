"""When a call may skip the budget check: analytics said recently that no budget exists at all."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class NoBudgetsFlag:
    """Remembers "no budget is configured" for `ttl` seconds; a budget change clears it at once."""

    ttl: float = 5.0
    _none_until: float = 0.0

    def skip(self, now: float) -> bool:
        """True while the last answer said no budget exists and is younger than `ttl`."""
        return now < self._none_until

    def observe(self, configured: bool, now: float) -> None:
        """Record what analytics answered."""
        self._none_until = 0.0 if configured else now + self.ttl

    def invalidate(self) -> None:
        """A budget changed somewhere: check again on the next call."""
        self._none_until = 0.0
