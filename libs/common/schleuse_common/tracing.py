"""OpenTelemetry tracing: trace context carried through NATS headers, OTLP export when configured."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_tracer = trace.get_tracer("schleuse")
_enabled = False  # without an exporter nobody reads spans: skip building them on the hot path


def configure(service: str, otlp_endpoint: str | None) -> None:
    """Install a tracer provider when an OTLP endpoint is set; otherwise trace context is only passed on."""
    global _tracer, _enabled
    _enabled = bool(otlp_endpoint)
    if not _enabled:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": f"schleuse-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("schleuse")


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context (traceparent) to outgoing NATS headers."""
    if _enabled:
        propagate.inject(headers)
    return headers


@contextmanager
def span_from_headers(name: str, headers: Mapping[str, str] | None) -> Iterator[None]:
    """Run the block in a span that continues the caller's trace from NATS headers."""
    if not _enabled:
        yield
        return
    ctx = propagate.extract(dict(headers or {}))
    with _tracer.start_as_current_span(name, context=ctx, kind=trace.SpanKind.SERVER):
        yield


@contextmanager
def span(name: str) -> Iterator[None]:
    """A span for a piece of local work."""
    if not _enabled:
        yield
        return
    with _tracer.start_as_current_span(name):
        yield


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, or None outside a recorded span."""
    if not _enabled:
        return None
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
