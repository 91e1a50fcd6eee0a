"""Flask apps for the zero-code attach and ``sigobs doctor`` tests.

Most of them know nothing of flask-sigobs, as an app one does not own: :func:`create_app` is a
plain app factory, :data:`app` an app made at import. :func:`with_sigobs` is the exception, an app
that also calls ``SigObs(app)`` itself. :func:`combined` serves several apps in one process: a
factory app at ``/``, the ``SigObs(app)`` one at ``/own`` and one created only on its first
request, after the attach point, at ``/late``. The others are the set-ups ``sigobs doctor`` must
see through (instrumented twice, structlog dropping our lines, OpenTelemetry set up at import).

App names take ``ATTACH_TEST_RUN`` as a suffix, so each test run's services are its own in Jaeger.
``python -m tests.attach_apps PORT`` serves :data:`app` with Flask's development server.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import flask
from flask import Flask, abort, flash, jsonify, render_template_string

RUN = os.environ.get("ATTACH_TEST_RUN", "")

PAGE = "<!doctype html><title>{{ title }}</title><p>{{ title }}</p>"


def create_app(name: str = "factory") -> Flask:
    """A plain app factory: routes for 200, 302, 401, 404, 500 (an exception) and a template.

    ``flask.Flask`` is looked up when called, as by a module imported after ``opentelemetry-instrument``
    replaced it (an in-process test instruments after this module is imported).
    """
    app: Flask = flask.Flask(f"{name}{RUN}")
    app.config["SECRET_KEY"] = "attach-apps-not-a-secret"

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        if item_id > 100:
            abort(404)
        return jsonify(id=item_id, app=app.name, pid=os.getpid())

    @app.route("/page")
    def page() -> Any:
        flash("shown", "info")
        return render_template_string(PAGE, title="page")

    @app.route("/private")
    def private() -> Any:
        return "who are you?", 401

    @app.route("/go")
    def go() -> Any:
        return "", 302, {"Location": "/page"}

    @app.route("/boom")
    def boom() -> Any:
        raise RuntimeError("boom from the app")

    @app.route("/health")
    def health() -> Any:
        return "ok"

    @app.route("/whoami")
    def whoami() -> Any:
        sigobs = app.extensions.get("sigobs")
        return jsonify(app=app.name, pid=os.getpid(), attached=sigobs is not None,
                       own_sigobs=sigobs is not None and sigobs is OWN.get(app.name),
                       flask_class=f"{type(app).__module__}.{type(app).__qualname__}")

    return app


#: app name -> the SigObs the app made itself (for /whoami)
OWN: dict[str, Any] = {}


def with_sigobs(name: str = "own") -> Flask:
    """An app that attaches flask-sigobs itself, as the README says."""
    from flask_sigobs import SigObs

    app = create_app(name)
    OWN[app.name] = SigObs(app)
    return app


class CreatedOnFirstRequest:
    """A WSGI app that makes its Flask app only when the first request for it arrives."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.app: Flask | None = None
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self._lock:
            if self.app is None:
                self.app = create_app(self.name)
        return self.app(environ, start_response)


def combined() -> Any:
    """Several apps in one process: ``/`` (a factory's), ``/own`` (SigObs(app)), ``/late`` (made late)."""
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    return DispatcherMiddleware(create_app("front"), {"/own": with_sigobs("own"),
                                                      "/late": CreatedOnFirstRequest("late")})


app = create_app("module")


# -- set-ups for sigobs doctor ------------------------------------------------------------------

def with_config() -> Flask:
    """Configuration from app.config, for the doctor's 'where it came from'."""
    app = create_app("configured")
    app.config["SIGOBS_SERVICE_NAME"] = f"configured-in-app{RUN}"
    app.config["SIGOBS_REDACT_KEYS"] = "card_number"
    return app


def twice_instrumented() -> Flask:
    """The WSGI middleware and the Flask instrumentation both: two server spans per request."""
    from .extras import flask_instrumentor

    FlaskInstrumentor = flask_instrumentor()
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    app = create_app("twice")
    app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    FlaskInstrumentor.instrument_app(app)
    return app


def structlog_dropping() -> Flask:
    """The app configures structlog itself, with a filter that drops every event of other loggers."""
    import structlog

    def only_mine(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if not str(event_dict.get("event", "")).startswith("myapp."):
            raise structlog.DropEvent
        return event_dict

    structlog.configure(processors=[only_mine, structlog.processors.JSONRenderer()],
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    return create_app("own-structlog")


def structlog_warnings_only() -> Flask:
    """The app configures structlog to keep warnings and above only."""
    import logging

    import structlog

    structlog.configure(processors=[structlog.processors.JSONRenderer()],
                        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    return create_app("quiet-structlog")


def structlog_passing() -> Flask:
    """The app configures structlog itself, in a way that lets our lines through."""
    import structlog

    structlog.configure(processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    return create_app("app-structlog")


def otel_at_import() -> Flask:
    """The app sets OpenTelemetry up itself, at import (before any fork), from the standard variables."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"own-otel{RUN}"}))
    grpc = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc"
    provider.add_span_processor(BatchSpanProcessor(Grpc() if grpc else Http()))
    trace.set_tracer_provider(provider)
    return create_app("own-otel")


if __name__ == "__main__":  # python -m tests.attach_apps PORT: the development server
    app.run(host="127.0.0.1", port=int(sys.argv[1]), use_reloader=False, threaded=True)
