"""The apps the benchmarks compare: one small route, observed in each of the ways measured.

``make(variant)`` builds a fresh app; gunicorn can serve one with
``gunicorn 'benchmarks.apps:make("sigobs")'``. In the first variants spans go to an exporter
that drops them, so only the cost paid by the request is measured; the ``EXPORT_VARIANTS`` send
them for real (OTLP/HTTP, OTLP/gRPC, sentry's and elastic's own protocols) to the endpoint in
``SIGOBS_BENCH_ENDPOINT``: a local server in another process that counts and discards
(``benchmarks/discard.py``, started by ``request_overhead.py``).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Sequence

from flask import Flask

LOG_DIR = os.environ.get("SIGOBS_BENCH_LOG_DIR") or tempfile.mkdtemp(prefix="sigobs-bench-")

#: bare Flask; the standard instrumentation alone; what a team writes by hand on top of it;
#: flask-sigobs on the standard instrumentation's span; flask-sigobs by default (its span built
#: from the signals); the same writing each log line at once; the default and the instrumentation's
#: span through the SDK's and werkzeug's public API (SIGOBS_FAST_PATH=off: what an SDK whose internals
#: changed gets); the nearest peers. ``-metrics``: the same with the HTTP server metrics on (a
#: MeterProvider whose reader exports to a dropping exporter).
VARIANTS = ["bare", "otel", "otel-metrics", "handwritten", "sigobs-otel-span", "sigobs", "sigobs-metrics",
            "sigobs-line-by-line", "sigobs-public-api", "sigobs-otel-span-public-api", "elastic-apm", "sentry"]

#: The variants that export for real, each with the kind of endpoint it sends to (discard.py): the
#: standard alone (its own BatchSpanProcessor and OTLP exporter, over HTTP and gRPC); flask-sigobs by
#: default with its own provider set up from the OTEL_* variables (HTTP and gRPC); flask-sigobs by
#: default with the app's own provider, BatchSpanProcessor and OTLPSpanExporter; flask-sigobs on the
#: standard span with its own provider; the peers, pointed at loopback. ``sigobs-otlp-direct-writer``: the
#: default with its own provider whose exporter writes the protobuf bytes itself (benchmarks/otlp_direct.py,
#: a prototype: the first step of a direct path, measured in the request, not a path of the library). ``sigobs-no-export``: no
#: span processor at all (no OTEL endpoint), the floor under every export, for the accounting.
EXPORT_VARIANTS = {
    "otel-otlp": "otlp-http",
    "otel-otlp-grpc": "otlp-grpc",
    "sigobs-no-export": None,
    "sigobs-otlp": "otlp-http",
    "sigobs-otlp-grpc": "otlp-grpc",
    "sigobs-app-provider-otlp": "otlp-http",
    "sigobs-otel-span-otlp": "otlp-http",
    "sigobs-otlp-direct-writer": "otlp-http",
    "elastic-apm-send": "elastic",
    "sentry-send": "sentry",
}
VARIANTS += list(EXPORT_VARIANTS)

#: What each variant must flush at the end so that every span it made is sent (see flush()).
_FLUSH: list[Any] = []


class DropExporter:
    """A SpanExporter that accepts and forgets: the batch processor still does all its work."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def DropMetricExporter() -> Any:  # noqa: N802 (used as a class)
    """A MetricExporter that accepts and forgets: the reader still collects every interval."""
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    class Drop(MetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
            return MetricExportResult.SUCCESS

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            pass

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

    return Drop()


def _meter_provider() -> Any:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    return MeterProvider(metric_readers=[PeriodicExportingMetricReader(DropMetricExporter())])


def _route(app: Flask) -> Flask:
    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> str:
        return f"item {item_id}"

    return app


def _provider(exporter: Any = None) -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(exporter or DropExporter()))
    _FLUSH.append(lambda final: provider.force_flush())
    return provider


def endpoint() -> str:
    """Where an exporting variant sends: its own listener of discard.py (request_overhead.py sets it)."""
    try:
        return os.environ["SIGOBS_BENCH_ENDPOINT"]
    except KeyError:
        raise SystemExit("an exporting variant needs SIGOBS_BENCH_ENDPOINT (benchmarks/discard.py's address)") from None


def _otlp_exporter(protocol: str) -> Any:
    """The SDK's OTLP exporter, as an app that sets up its own provider makes it."""
    if protocol == "otlp-grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint(), insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=f"{endpoint()}/v1/traces")


class DirectWriterExporter:
    """OTLP/HTTP with benchmarks/otlp_direct.py's writer: the SDK exporter's POST, without encode_spans.

    Like the SDK's OTLPSpanExporter with its defaults (no compression; a retry only after a failure,
    which the discard endpoint never answers): one POST of application/x-protobuf per batch."""

    def __init__(self, url: str) -> None:
        import requests

        from benchmarks.otlp_direct import DirectEncoder

        self.url = url
        self.session = requests.Session()
        self.encoder = DirectEncoder()

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        response = self.session.post(self.url, data=self.encoder.encode(spans), timeout=10,
                                     headers={"Content-Type": "application/x-protobuf"})
        return SpanExportResult.SUCCESS if response.ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.session.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def flush(final: bool = False) -> None:
    """Send what every exporter of this process still holds: the benchmark then counts what arrived.
    ``final``: the last time, where an exporter that can only flush by closing (elastic-apm) closes."""
    for each in _FLUSH:
        each(final)


def path_taken(app: Flask) -> str:
    """Which way flask-sigobs makes this app's spans and headers: the short way or the public API."""
    sigobs = app.extensions.get("sigobs")
    if sigobs is None:
        return "-"
    runtime = sigobs.runtime(app)
    if runtime.fast_spans and runtime.fast_headers:
        return "short way"
    if not runtime.fast_spans and not runtime.fast_headers:
        return "public API"
    return "spans " + ("short" if runtime.fast_spans else "public") + ", headers " + \
        ("short" if runtime.fast_headers else "public")


def make(variant: str) -> Flask:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {VARIANTS}")
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    app = _route(Flask(f"bench_{variant}"))
    log_file = os.path.join(LOG_DIR, f"{variant}-{os.getpid()}.log")
    if variant in EXPORT_VARIANTS:
        _exporting(app, variant, log_file)
    elif variant in ("otel", "otel-metrics"):
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        extra = {"meter_provider": _meter_provider()} if variant == "otel-metrics" else {}
        FlaskInstrumentor.instrument_app(app, tracer_provider=_provider(), **extra)
    elif variant == "handwritten":
        _handwritten(app, log_file)
    elif variant.startswith("sigobs"):
        from flask_sigobs import SigObs

        app.config.update(SIGOBS_SPAN_EXPORTER=DropExporter(), SIGOBS_LOG_FILE=log_file,
                          SIGOBS_SPAN_SOURCE="otel" if variant.startswith("sigobs-otel-span") else "signals",
                          SIGOBS_FAST_PATH="off" if variant.endswith("-public-api") else "auto")
        if variant == "sigobs-line-by-line":
            app.config["SIGOBS_LOG_FLUSH_INTERVAL"] = 0
        if variant == "sigobs-metrics":
            app.config["SIGOBS_METRICS_EXPORTER"] = DropMetricExporter()
        sigobs = SigObs(app)
        _FLUSH.append(lambda final: sigobs.runtime(app).tracer_provider.force_flush())
    elif variant == "elastic-apm":
        from elasticapm.contrib.flask import ElasticAPM

        app.config["ELASTIC_APM"] = {"SERVICE_NAME": "bench", "DISABLE_SEND": True, "CENTRAL_CONFIG": False,
                                     "METRICS_INTERVAL": "0ms", "LOG_LEVEL": "off"}
        ElasticAPM(app)
    elif variant == "sentry":
        import sentry_sdk
        from sentry_sdk.integrations.flask import FlaskIntegration
        from sentry_sdk.transport import Transport

        class DropTransport(Transport):
            def capture_envelope(self, envelope: Any) -> None:
                pass

        sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", integrations=[FlaskIntegration()],
                        traces_sample_rate=1.0, transport=DropTransport, default_integrations=False)
    return app


def _exporting(app: Flask, variant: str, log_file: str) -> None:
    """The variants that send what they make to discard.py (see EXPORT_VARIANTS)."""
    kind = EXPORT_VARIANTS[variant]
    if variant.startswith("otel-"):
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor.instrument_app(app, tracer_provider=_provider(_otlp_exporter(kind)))
    elif variant.startswith("sigobs"):
        from flask_sigobs import SigObs

        for key in [key for key in os.environ if key.startswith("OTEL_EXPORTER_OTLP")]:
            del os.environ[key]  # only what this variant sets below
        if variant == "sigobs-no-export":
            os.environ["OTEL_TRACES_EXPORTER"] = "none"
        elif variant == "sigobs-app-provider-otlp":  # the app's own provider, set globally before SigObs
            from opentelemetry import trace

            trace.set_tracer_provider(_provider(_otlp_exporter(kind)))
        elif variant == "sigobs-otlp-direct-writer":  # its own provider, with the prototype writer's exporter
            app.config["SIGOBS_SPAN_EXPORTER"] = DirectWriterExporter(f"{endpoint()}/v1/traces")
        else:  # flask-sigobs sets up its own provider from the standard variables
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint() if kind == "otlp-http" else f"http://{endpoint()}"
            os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc" if kind == "otlp-grpc" else "http/protobuf"
        app.config.update(SIGOBS_LOG_FILE=log_file,
                          SIGOBS_SPAN_SOURCE="otel" if variant.startswith("sigobs-otel-span") else "signals")
        sigobs = SigObs(app)
        if sigobs.runtime(app).otel_owner == "flask-sigobs":  # the app's own provider flushes above
            _FLUSH.append(lambda final: sigobs.runtime(app).tracer_provider.force_flush())
    elif variant == "elastic-apm-send":
        import elasticapm
        from elasticapm.contrib.flask import ElasticAPM

        app.config["ELASTIC_APM"] = {"SERVICE_NAME": "bench", "SERVER_URL": endpoint(), "CENTRAL_CONFIG": False,
                                     "METRICS_INTERVAL": "0ms", "LOG_LEVEL": "off", "CLOUD_PROVIDER": False}
        ElasticAPM(app)
        _FLUSH.append(lambda final: elasticapm.get_client().close() if final else
                      elasticapm.get_client()._transport.flush())
    elif variant == "sentry-send":
        import sentry_sdk
        from sentry_sdk.integrations.flask import FlaskIntegration

        host = endpoint().removeprefix("http://")
        sentry_sdk.init(dsn=f"http://public@{host}/1", integrations=[FlaskIntegration()],
                        traces_sample_rate=1.0, default_integrations=False)
        _FLUSH.append(lambda final: sentry_sdk.flush(timeout=30))


def _handwritten(app: Flask, log_file: str) -> None:
    """What a team writes today: the standard instrumentation plus a structlog access line."""
    import orjson
    import structlog
    from flask import request_finished
    from opentelemetry import trace
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    FlaskInstrumentor.instrument_app(app, tracer_provider=_provider())
    logger = structlog.wrap_logger(
        structlog.BytesLogger(open(log_file, "ab")),
        processors=[structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.add_log_level,
                    structlog.processors.JSONRenderer(serializer=orjson.dumps)],
    )

    def access_line(sender: Flask, response: Any, **_: Any) -> None:
        from flask import request

        span = trace.get_current_span()
        context = span.get_span_context()
        attributes = {"http.request.method": request.method, "http.route": request.url_rule.rule,
                      "url.path": request.path, "http.response.status_code": response.status_code}
        span.add_event("request_finished", attributes)
        logger.info("request_finished", trace_id=format(context.trace_id, "032x"),
                    span_id=format(context.span_id, "016x"), **attributes)

    request_finished.connect(access_line, app, weak=False)
