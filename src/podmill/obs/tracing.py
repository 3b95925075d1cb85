"""OpenTelemetry traces: one trace per job, from the API request to its last step.

Off by default (``tracing.enabled``; env ``PODMILL_TRACING__ENABLED=true``). Until
:func:`configure` turns it on, every function here is a no-op that imports nothing from
OpenTelemetry: no SDK, no exporter thread, and a span costs one ``if``. Turned on, it
needs the ``tracing`` extra (``opentelemetry-sdk`` and the OTLP/HTTP exporter); without
it, one error line names the extra.

Where the spans go: ``tracing.endpoint``, else ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the
collector's base URL; ``/v1/traces`` is added), else ``http://localhost:4318``. The
service name: ``tracing.service_name``, else ``OTEL_SERVICE_NAME``, else the process's
role (``podmill-api``, ``podmill-worker``).

The trace crosses processes through the job: submit stores the W3C ``traceparent`` of its
span in the job's payload (``payload["trace"]``), and every step, on any worker, starts
its span as a child of it (:func:`span` with ``parent=``). Span names and attributes are
in docs/observability.md ("Traces").
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from podmill.errors import require

TRACING_EXTRA = "tracing"
DEFAULT_ENDPOINT = "http://localhost:4318"
# The job payload's key holding the submit's trace context.
PAYLOAD_KEY = "trace"

_tracer: Any = None  # an opentelemetry Tracer once configured; None: tracing is off
_provider: Any = None
_lock = threading.Lock()


class _NoSpan:
    """What :func:`span` yields when tracing is off: takes attributes, keeps nothing."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        pass

    def update_name(self, name: str) -> None:
        pass


NO_SPAN = _NoSpan()


def enabled() -> bool:
    """Whether this process exports spans."""
    return _tracer is not None


def configure(
    enabled: bool,
    *,
    service_name: str | None = None,
    endpoint: str | None = None,
    role: str = "podmill",
    schedule_delay_ms: int | None = None,
) -> bool:
    """Turn tracing on for this process (idempotent), or leave it off; returns whether it
    is on. Raises :class:`~podmill.errors.MissingExtraError` when on without the extra."""
    global _tracer, _provider
    if not enabled:
        return _tracer is not None
    with _lock:
        if _tracer is not None:
            return True
        feature = "tracing (tracing.enabled)"
        require("opentelemetry.sdk.trace", TRACING_EXTRA, feature)
        require("opentelemetry.exporter.otlp.proto.http.trace_exporter", TRACING_EXTRA, feature)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from podmill import __version__

        name = service_name or os.environ.get("OTEL_SERVICE_NAME") or role
        base = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT
        traces_url = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") if not endpoint else None
        exporter = OTLPSpanExporter(endpoint=traces_url or base.rstrip("/") + "/v1/traces")
        provider = TracerProvider(
            resource=Resource.create({"service.name": name, "service.version": __version__})
        )
        options = {} if schedule_delay_ms is None else {"schedule_delay_millis": schedule_delay_ms}
        provider.add_span_processor(BatchSpanProcessor(exporter, **options))
        atexit.register(provider.shutdown)  # the last spans are sent before the process exits
        _provider, _tracer = provider, provider.get_tracer("podmill", __version__)
        return True


def shutdown() -> None:
    """Flush and stop the exporter; tracing is off afterwards (tests, a command's end)."""
    global _tracer, _provider
    with _lock:
        provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def _ns(at: datetime | float | int | None) -> int | None:
    """Unix nanoseconds of a datetime (aware, or naive UTC) or of Unix seconds."""
    if at is None:
        return None
    if isinstance(at, datetime):
        if at.tzinfo is None:
            from datetime import UTC

            at = at.replace(tzinfo=UTC)
        return int(at.timestamp() * 1e9)
    return int(at * 1e9)


def _context_of(traceparent: str | None) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not traceparent:
        return None
    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: str | None = None,
    start: datetime | float | None = None,
    kind: str = "internal",
) -> Iterator[Any]:
    """A span around the block, current inside it (children and log lines see it).

    ``parent`` is a W3C traceparent to join (another process's span) instead of the
    current span; ``start`` an earlier start (a datetime or Unix seconds); ``kind`` one of
    ``internal server client consumer``. Yields the span (``NO_SPAN`` when tracing is
    off). An exception leaving the block marks the span as an error."""
    tracer = _tracer
    if tracer is None:
        yield NO_SPAN
        return
    from opentelemetry import trace

    kinds = {
        "internal": trace.SpanKind.INTERNAL,
        "server": trace.SpanKind.SERVER,
        "client": trace.SpanKind.CLIENT,
        "consumer": trace.SpanKind.CONSUMER,
    }
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    with tracer.start_as_current_span(
        name,
        context=_context_of(parent),
        kind=kinds[kind],
        attributes=attrs,
        start_time=_ns(start),
    ) as current:
        yield current


def record_span(
    name: str,
    start: datetime | float,
    end: datetime | float,
    attributes: Mapping[str, Any] | None = None,
) -> None:
    """A finished span from ``start`` to ``end`` (a wait measured elsewhere: the queue
    wait, the claim), a child of the current span."""
    tracer = _tracer
    if tracer is None:
        return
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    started = tracer.start_span(name, attributes=attrs, start_time=_ns(start))
    started.end(end_time=_ns(end))


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span (``None`` when off or outside a span)."""
    if _tracer is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits), or ``None``: the JSON log lines'
    ``trace_id``."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


def traceparent_of(payload: Mapping[str, Any] | None) -> str | None:
    """The traceparent a job's payload carries (``None``: the job was not traced)."""
    trace = (payload or {}).get(PAYLOAD_KEY)
    return trace.get("traceparent") if isinstance(trace, Mapping) else None


def set_attributes(**attributes: Any) -> None:
    """Add attributes to the current span (token counts, bytes); no-op when off."""
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes({k: v for k, v in attributes.items() if v is not None})
