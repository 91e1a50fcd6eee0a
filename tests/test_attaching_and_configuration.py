"""Attaching like any Flask extension, and configuration that fails early and by name."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from flask import Flask
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flask_sigobs import ConfigError, SigObs, config

from .extras import flask_instrumentor


def hello_app(name: str) -> Flask:
    app = Flask(name)

    @app.route("/")
    def index():
        return "hello"

    return app


def test_sigobs_app_registers_the_extension(tmp_path):
    app = hello_app("direct")
    app.config.update(SIGOBS_LOG_FILE=str(tmp_path / "x.log"), SIGOBS_SPAN_EXPORTER=InMemorySpanExporter())
    sigobs = SigObs(app)
    assert app.extensions["sigobs"] is sigobs
    sigobs.init_app(app)  # a second init of the same app is a no-op, not a second set of receivers
    app.test_client().get("/")
    sigobs.flush(app)  # lines wait up to SIGOBS_LOG_FLUSH_INTERVAL to be written
    assert (tmp_path / "x.log").read_text().count("flask.request_finished") == 1
    with pytest.raises(RuntimeError, match="already attached"):
        SigObs(app)


def test_one_sigobs_serving_two_apps_keeps_them_apart(observe):
    sigobs = SigObs()
    first = observe(hello_app("first"), sigobs=sigobs, SIGOBS_SERVICE_NAME="billing")
    second = observe(hello_app("second"), sigobs=sigobs, SIGOBS_SERVICE_NAME="catalogue")
    first.client().get("/")
    second.client().get("/")
    second.client().get("/")
    assert [line["service.name"] for line in first.lines()] == ["billing"]
    assert [line["service.name"] for line in second.lines()] == ["catalogue", "catalogue"]
    assert [s.resource.attributes["service.name"] for s in first.spans()] == ["billing"]
    assert {s.resource.attributes["service.name"] for s in second.spans()} == {"catalogue"}


def test_settings_come_from_app_config_then_environment_then_defaults(monkeypatch):
    monkeypatch.setenv("SIGOBS_LOG_LEVEL", "warning")
    monkeypatch.setenv("SIGOBS_REQUEST_ID_HEADER", "X-Correlation-ID")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-otel-env")
    app = Flask("cfg")
    app.config["SIGOBS_LOG_LEVEL"] = "debug"
    settings = config.load(app)
    assert settings.log_level == 10 and settings.sources["SIGOBS_LOG_LEVEL"] == "app.config"
    assert settings.request_id_header == "X-Correlation-ID"
    assert settings.sources["SIGOBS_REQUEST_ID_HEADER"] == "environment"
    assert settings.service_name == "from-otel-env"
    assert settings.log_format == "json" and settings.sources["SIGOBS_LOG_FORMAT"] == "default"
    assert settings.signals == config.parse_signals("default")


@pytest.mark.parametrize("key, value", [
    ("SIGOBS_LOG_LEVEL", "verbose"),
    ("SIGOBS_LOG_FORMAT", "xml"),
    ("SIGOBS_SIGNALS", "request_started,request_exploded"),
    ("SIGOBS_SIGNAL_LEVELS", "request_started"),
    ("SIGOBS_EXCLUDED_PATHS", "healthz"),
    ("SIGOBS_REQUEST_ID_HEADER", "X Request Id"),
    ("SIGOBS_TRUSTED_PROXIES", "two"),
    ("SIGOBS_SPAN_SOURCE", "magic"),
    ("SIGOBS_LOG_FILE", "/no/such/dir/app.log"),
    ("SIGOBS_SERVICE_NAME", "  "),
    ("SIGOBS_CAPTURE_LOGGING", "perhaps"),
    ("SIGOBS_MAX_VALUE_LENGTH", "3"),
])
def test_invalid_configuration_fails_at_init_app_naming_the_key(key, value):
    app = Flask("bad")
    app.config[key] = value
    with pytest.raises(ConfigError, match=key):
        SigObs().init_app(app)
    assert "sigobs" not in app.extensions


def test_invalid_otlp_protocol_is_named(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    from flask_sigobs import otel_setup

    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        otel_setup.otlp_exporter()


def test_otlp_exporter_follows_the_standard_variables(monkeypatch):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    from flask_sigobs import otel_setup

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    assert otel_setup.otlp_exporter() is None  # no endpoint: nothing to send to
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert isinstance(otel_setup.otlp_exporter(), Http)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert isinstance(otel_setup.otlp_exporter(), Grpc)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert otel_setup.otlp_exporter() is None


def test_signal_list_syntax():
    assert config.parse_signals("all") == frozenset(config.catalogue.SIGNALS)
    assert config.parse_signals("request_finished") == {"request_finished"}
    assert config.parse_signals(["request_finished", "got_request_exception"]) == {
        "request_finished", "got_request_exception"}
    edited = config.parse_signals("+appcontext_pushed,-template_rendered")
    assert "appcontext_pushed" in edited and "template_rendered" not in edited
    assert "request_finished" in edited


def instrumented_by_the_app(name: str) -> tuple[Flask, InMemorySpanExporter]:
    """An app the app's own code instrumented, with its own provider, before flask-sigobs came."""
    app = hello_app(name)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "theirs"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    flask_instrumentor().instrument_app(app, tracer_provider=provider)
    return app, exporter


def test_an_app_already_instrumented_keeps_its_single_server_span(observe):
    app, exporter = instrumented_by_the_app("pre_instrumented")
    observed = observe(app)
    observed.client().get("/")
    spans = exporter.get_finished_spans()
    assert len(spans) == 1 and observed.spans() == []
    names = [event.name for event in spans[0].events]
    assert names == ["flask.request_started", "flask.request_finished"]
    line = observed.events("flask.request_finished")[0]
    assert line["trace_id"] == format(spans[0].context.trace_id, "032x")
    assert observed.sigobs.runtime(app).instrumented_by == "app"


def test_an_apps_own_span_is_held_open_for_the_signals_after_its_teardown(observe):
    """The app's instrumentation ends its span in a teardown function; Flask sends three signals
    after that. flask-sigobs holds the end of the app's own SDK span (not one it made), so they land
    on it, and the span is ended once, after them."""
    app, exporter = instrumented_by_the_app("pre_instrumented_all_signals")
    observed = observe(app, SIGOBS_SIGNALS="all")
    for _ in range(2):
        assert observed.client().get("/").status_code == 200
    spans = exporter.get_finished_spans()
    assert len(spans) == 2 and type(spans[0]).__name__ == "ReadableSpan", "the SDK's own span, ended by the SDK"
    for span in spans:
        names = [event.name for event in span.events]
        assert names[-3:] == ["flask.request_tearing_down", "flask.appcontext_tearing_down",
                              "flask.appcontext_popped"]
        assert span.end_time >= span.events[-1].timestamp


def _run(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SIGOBS_"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=60, env=full_env)


def test_a_tracer_provider_set_by_the_app_is_used_untouched():
    result = _run("""
        from flask import Flask
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from flask_sigobs import SigObs
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "set-by-app"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        app = Flask("x")
        app.route("/")(lambda: "ok")
        sigobs = SigObs(app)
        assert sigobs.runtime(app).tracer_provider is provider
        assert sigobs.runtime(app).otel_owner == "app"
        app.test_client().get("/")
        (span,) = exporter.get_finished_spans()
        assert span.resource.attributes["service.name"] == "set-by-app"
        print("events", [e.name for e in span.events])
    """)
    assert result.returncode == 0, result.stderr
    assert "flask.request_finished" in result.stdout


def test_structlog_configured_by_the_app_keeps_its_pipeline_and_gains_correlation():
    result = _run("""
        import structlog
        from flask import Flask
        structlog.configure(processors=[structlog.processors.KeyValueRenderer(key_order=["event"])])
        from flask_sigobs import SigObs
        app = Flask("kv")
        @app.route("/")
        def index():
            structlog.get_logger().info("inside_view", order=7)
            return "ok"
        sigobs = SigObs(app)
        assert sigobs.runtime(app).structlog_owner == "app"
        app.test_client().get("/")
    """)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line]
    view = next(line for line in lines if "inside_view" in line)
    access = next(line for line in lines if "flask.request_finished" in line)
    assert view.startswith("event='inside_view'") and "order=7" in view  # their renderer, not ours
    assert "trace_id=" in view and "request.id=" in view
    trace_id = view.split("trace_id='")[1].split("'")[0]
    assert f"trace_id='{trace_id}'" in access


EXIT_FLUSH_CHILD = """
from flask import Flask
from flask_sigobs import SigObs
app = Flask("exit_flush")
app.route("/")(lambda: "ok")
SigObs(app)
for _ in range(3):
    app.test_client().get("/")
"""


def test_otlp_endpoint_configured_means_a_batch_processor_and_flush_at_exit(tmp_path):
    # A real OTLP/HTTP receiver on loopback: a tiny server that keeps what is posted to it.
    child = tmp_path / "child.py"
    child.write_text(EXIT_FLUSH_CHILD)
    result = _run(f"""
        import http.server, threading, subprocess, sys, os
        received = []
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200); self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()
            def log_message(self, *args): pass
        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{{server.server_port}}",
                   SIGOBS_LOG_FILE="{tmp_path / 'exit.log'}")
        subprocess.run([sys.executable, "{child}"], env=env, check=True, timeout=60)
        body = b"".join(received)
        print("has_service", b"exit_flush" in body, "has_event", b"flask.request_finished" in body)
    """)
    assert result.returncode == 0, result.stderr
    assert "has_service True has_event True" in result.stdout, result.stdout
