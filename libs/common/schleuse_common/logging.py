"""One logger: structlog JSON with the trace id, and a processor that masks anything that could carry content."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from schleuse_common import tracing

# Keys whose values could carry prompt text, personal data or secrets; matched case-insensitively.
SENSITIVE_KEYS = re.compile(
    r"(prompt|content|message(s)?$|^text$|body|payload|answer|api_?key|authorization|password|secret|token"
    r"|cookie|e?mail|phone|caller_(number|name)|name$|date_of_birth|dob|iban|note|raw)",
    re.IGNORECASE,
)
SAFE_KEYS = frozenset({"event", "level", "timestamp", "logger", "trace_id", "service", "subject", "error"})
MASK = "[masked]"


def mask_sensitive(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace the value of every field whose name could carry content or PII."""
    for key in list(event_dict):
        if key not in SAFE_KEYS and SENSITIVE_KEYS.search(key):
            event_dict[key] = MASK
    return event_dict


def add_trace_id(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Attach the current trace id, if any."""
    trace_id = tracing.current_trace_id()
    if trace_id:
        event_dict.setdefault("trace_id", trace_id)
    return event_dict


def configure(service: str, level: str = "INFO", json: bool = True) -> None:
    """Configure structlog and the standard library logging for a service process."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_id,
        mask_sensitive,
        structlog.processors.format_exc_info,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s")
    for noisy in ("uvicorn.access", "httpx", "httpcore", "nats", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
