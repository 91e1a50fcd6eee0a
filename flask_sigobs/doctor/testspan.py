"""One real test span, sent once through an OTLP exporter's own client, and what became of it.

The span is made by a private TracerProvider (the app's resource, always sampled) so that
nothing of the app's pipeline is touched; ``otlp_http`` and ``otlp_grpc`` send it and say the
outcome in words.
"""

from __future__ import annotations

import time
from typing import Any

from .describe import _resource_service, _without_userinfo
from .exporters import ExporterInfo
from .otlp_grpc import _send_grpc
from .otlp_http import _send_http
from .report import Delivery


def _test_span(provider: Any) -> Any:
    """One finished SDK span, with the app's resource (its service name), made without exporting it."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.trace import SpanKind

    captured: list[Any] = []

    class Keep(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            captured.extend(spans)
            return SpanExportResult.SUCCESS

    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    resource = getattr(provider, "resource", None) or Resource.create({})
    local = TracerProvider(resource=resource, sampler=ALWAYS_ON, shutdown_on_exit=False)
    local.add_span_processor(SimpleSpanProcessor(Keep()))
    tracer = local.get_tracer("flask_sigobs.doctor")
    with tracer.start_as_current_span("sigobs doctor test span", kind=SpanKind.INTERNAL,
                                      attributes={"sigobs.doctor": True}) as span:
        span.add_event("sigobs.doctor", {"message": "a test span sent by `sigobs doctor`"})
    local.shutdown()
    return captured[0]


def _probe_timeout(exporter: Any, timeout: float | None) -> float:
    if timeout is not None:
        return max(0.1, min(float(timeout), 30.0))
    own = getattr(exporter, "_timeout", None)
    client = getattr(exporter, "_client", None)
    own = getattr(client, "_timeout", None) or own
    try:
        return max(0.1, min(float(own), 30.0)) if own else 10.0
    except (TypeError, ValueError):
        return 10.0


def send_test_span_to(info: ExporterInfo, provider: Any, timeout: float | None = None) -> Delivery:
    """Send one test span through ``info``'s exporter client, once, and say what happened."""
    span = _test_span(provider)
    trace_id = format(span.context.trace_id, "032x")
    seconds = _probe_timeout(info.exporter, timeout)
    endpoint = _without_userinfo(info.endpoint or "?")
    start = time.monotonic()
    try:
        if info.kind == "otlp-http":
            delivery = _send_http(info, span, seconds)
        else:
            delivery = _send_grpc(info, span, seconds)
    except Exception as exc:  # the doctor's own failure must still be said in words
        delivery = Delivery("error", f"could not be sent: {type(exc).__name__}: {exc}", endpoint, info.protocol, 0.0)
    delivery.seconds = round(time.monotonic() - start, 3)
    delivery.endpoint = endpoint
    delivery.trace_id = trace_id
    if delivery.accepted:
        delivery.words += f" in {delivery.seconds * 1000:.0f} ms (trace id {trace_id}, service "\
                          f"{_resource_service(provider) or '?'})"
    return delivery
