"""Ingest's business metrics (no labels that could carry personal data)."""

from prometheus_client import Counter, Histogram

EVENTS = Counter("schleuse_ingest_events_total", "Call events read, by origin kind and outcome", ["kind", "outcome"])
DEAD_LETTERS = Counter("schleuse_ingest_dead_letters_total", "Call events rejected, by reason", ["reason"])
BATCH_SECONDS = Histogram(
    "schleuse_ingest_batch_seconds",
    "Time to validate, store and commit one batch",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PURGED = Counter("schleuse_ingest_purged_total", "Rows and files removed by retention, by kind", ["kind"])
