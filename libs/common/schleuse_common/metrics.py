"""Prometheus metrics shared by all services (business metrics live with their service)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

HANDLER_SECONDS = Histogram(
    "schleuse_bus_handler_seconds",
    "Time spent handling one bus message, by subject",
    ["subject"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HANDLER_ERRORS = Counter("schleuse_bus_handler_errors_total", "Bus handlers that raised", ["subject"])
DEAD_LETTERS = Counter("schleuse_dead_letters_total", "Messages moved to a dead-letter subject", ["subject"])


@contextmanager
def timed_handler(subject: str) -> Iterator[None]:
    """Observe the duration of one handler call; count it as an error if it raises."""
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        HANDLER_ERRORS.labels(subject=subject).inc()
        raise
    finally:
        HANDLER_SECONDS.labels(subject=subject).observe(time.perf_counter() - start)
