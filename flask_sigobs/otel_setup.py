"""OpenTelemetry: the TracerProvider, the request span, and keeping that span open long enough.

The server span comes from opentelemetry-instrumentation-flask. It starts in a
``before_request`` function and ends in a ``teardown_request`` function, but Flask sends
``appcontext_pushed`` and ``request_started`` before the first and ``request_tearing_down``,
``appcontext_tearing_down`` and ``appcontext_popped`` after the second. Events fired before the
span exists wait in the request state (see ``extension``); for the ones after, :func:`hold_end`
defers the span's end until the WSGI call is over, so every event lands on its request's span.
"""

from __future__ import annotations

import os
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from .config import ConfigError

OTEL_SPAN_KEY = "opentelemetry-flask.span_key"


def otlp_exporter(environ: Any = None) -> SpanExporter | None:
    """The OTLP exporter the standard ``OTEL_EXPORTER_OTLP_*`` variables ask for, if any."""
    environ = os.environ if environ is None else environ
    kind = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if kind in ("none", ""):
        return None
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind != "otlp":
        raise ConfigError(f"OTEL_TRACES_EXPORTER: flask-sigobs sets up 'otlp', 'console' or 'none', not {kind!r}")
    if not (environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        return None
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL must be 'http/protobuf' or 'grpc', not {protocol!r}")


def tracer_provider(service_name: str, exporter: SpanExporter | None) -> tuple[Any, str]:
    """The provider to use and who set it up: the app's own, untouched, or a new one of ours.

    A provider we created for another app is not reused: each app gets its own Resource, so one
    ``SigObs`` serving two apps reports two services.
    """
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider) and not getattr(current, "_sigobs_owned", False):
        return current, "app"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider._sigobs_owned = True  # type: ignore[attr-defined]
    if exporter is None:
        exporter = otlp_exporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if isinstance(current, trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)  # flushed at exit: TracerProvider registers atexit
    return provider, "flask-sigobs"


def instrument(app: Any, provider: Any, excluded_urls: str | None) -> str:
    """Instrument ``app`` unless it already is; say who did."""
    if getattr(app, "_is_instrumented_by_opentelemetry", False):
        return "app"
    # One vocabulary: the stable HTTP semantic conventions on the span, like our events.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    FlaskInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=excluded_urls)
    return "flask-sigobs"


def hold_end(span: Any, state: Any) -> None:
    """Turn the span source's ``span.end()`` into a request; :func:`release_end` ends it."""
    if "end" in vars(span):
        return

    def end(end_time: int | None = None) -> None:
        state.end_requested = True

    span.end = end


def release_end(span: Any, state: Any) -> None:
    """End the span held by :func:`hold_end`, now that the request has said everything."""
    if "end" in vars(span):
        del span.end
        span.end(end_time=time.time_ns())


_QUERY_KEYS = ("url.query", "http.target", "http.url", "url.full")


def redact_span_query(span: Any, query: str, redacted: str) -> None:
    """The instrumentation copies the raw query string onto the span: replace it."""
    attributes = getattr(span, "attributes", None) or {}
    for key in _QUERY_KEYS:
        value = attributes.get(key)
        if isinstance(value, str) and query in value:
            span.set_attribute(key, value.replace(query, redacted))
