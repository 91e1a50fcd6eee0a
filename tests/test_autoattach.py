"""The zero-code attach in one process: every Flask app attached once, on its first request.

These tests call what the launchers call (:func:`flask_sigobs.autoattach.install`, the
``opentelemetry_instrumentor`` entry point) and serve real apps of ``tests.attach_apps``, which
know nothing of flask-sigobs, through real WSGI calls. Each app gets its JSON lines file and the
SDK's in-memory span exporter through ``app.config``, set after ``Flask()`` as a factory would:
the attach must see them. The launchers themselves, in real processes under gunicorn, are
``test_zero_code_attach.py``.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import flask
import flask.app
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flask_sigobs import SigObs, autoattach

from . import attach_apps
from .conftest import Observed, http
from .extras import flask_instrumentor


@pytest.fixture
def attach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install the auto-attach; ``attach.output(app)`` gives an app its own lines file and exporter."""
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER",
                "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"):
        monkeypatch.delenv(key, raising=False)
    original = flask.app.Flask.__call__
    autoattach.install()
    made: list[flask.Flask] = []

    class Attach:
        @staticmethod
        def output(app: flask.Flask, **config: Any) -> flask.Flask:
            exporter = InMemorySpanExporter()
            log_path = tmp_path / f"{app.name}-{len(made)}.log"
            app.config.update({"SIGOBS_SPAN_EXPORTER": exporter, "SIGOBS_LOG_FILE": str(log_path), **config})
            app.config["_test_output"] = (exporter, log_path)
            made.append(app)
            return app

        @staticmethod
        def observed(app: flask.Flask) -> Observed:
            exporter, log_path = app.config["_test_output"]
            return Observed(app, app.extensions["sigobs"], exporter, log_path)

    yield Attach
    autoattach.uninstall()
    assert flask.app.Flask.__call__ is original
    for app in made:
        sigobs = app.extensions.get("sigobs")
        if sigobs is not None:
            sigobs.runtime(app).tracer_provider.shutdown()


def access_lines(observed: Observed) -> list[dict[str, Any]]:
    return observed.events("flask.request_finished")


def event_names(span: Any) -> list[str]:
    return [event.name for event in span.events]


def assert_one_request_observed(observed: Observed, request_id: str, route: str, status: int) -> None:
    """One access line and one server span, with one set of events, for this request."""
    lines = [line for line in access_lines(observed) if line["request.id"] == request_id]
    assert len(lines) == 1, access_lines(observed)
    line = lines[0]
    assert line["http.route"] == route and line["http.response.status_code"] == status
    assert line["service.name"] == observed.app.name
    spans = [span for span in observed.server_spans()
             if any(event.attributes.get("request.id") == request_id for event in span.events)]
    assert len(spans) == 1, [event_names(span) for span in observed.server_spans()]
    names = event_names(spans[0])
    assert names.count("flask.request_started") == 1 and names.count("flask.request_finished") == 1, names
    assert format(spans[0].context.trace_id, "032x") == line["trace_id"]
    assert format(spans[0].context.span_id, "016x") == line["span_id"]


def get(app: flask.Flask, path: str, request_id: str) -> Any:
    return app.test_client().get(path, headers={"X-Request-ID": request_id})


def test_apps_made_before_and_after_the_attach_point_are_attached_on_their_first_request(attach):
    autoattach.uninstall()
    before = attach.output(attach_apps.create_app("before"))
    autoattach.install()
    after = attach.output(attach_apps.create_app("after"))
    for app in (before, after):
        assert "sigobs" not in app.extensions  # nothing happens until a request arrives
    assert get(before, "/items/1", "req-before").status_code == 200
    assert get(after, "/items/2", "req-after").status_code == 200
    for app, request_id in ((before, "req-before"), (after, "req-after")):
        assert app.extensions["sigobs"] is autoattach.shared_sigobs()
        assert_one_request_observed(attach.observed(app), request_id, "/items/<int:item_id>", 200)


def test_configuration_set_after_flask_is_created_is_seen(attach):
    app = attach.output(attach_apps.create_app("late-config"))
    app.config["SIGOBS_SERVICE_NAME"] = "configured-after-flask"  # as a factory or from_object would
    app.config["SIGOBS_SIGNALS"] = "default,+request_tearing_down"
    get(app, "/items/3", "req-config")
    observed = attach.observed(app)
    (line,) = access_lines(observed)
    assert line["service.name"] == "configured-after-flask"
    (span,) = observed.server_spans()
    assert "flask.request_tearing_down" in event_names(span)
    assert observed.sigobs.runtime(app).settings.sources["SIGOBS_SERVICE_NAME"] == "app.config"


def test_several_apps_of_one_factory_each_keep_their_own_outputs(attach):
    apps = [attach.output(attach_apps.create_app(f"tenant{n}")) for n in range(3)]
    for n, app in enumerate(apps):
        for k in range(2):
            assert get(app, f"/items/{k}", f"req-{n}-{k}").status_code == 200
    for n, app in enumerate(apps):
        observed = attach.observed(app)
        assert {line["request.id"] for line in access_lines(observed)} == {f"req-{n}-0", f"req-{n}-1"}
        for k in range(2):
            assert_one_request_observed(observed, f"req-{n}-{k}", "/items/<int:item_id>", 200)
        provider = observed.sigobs.runtime(app).tracer_provider
        assert provider.resource.attributes["service.name"] == app.name


def test_an_app_that_calls_sigobs_itself_is_attached_once(attach):
    app = attach_apps.create_app("self-attached")
    attach.output(app)
    own = SigObs(app)
    calls = []
    original = SigObs.init_app

    def counting(self: SigObs, app: flask.Flask) -> None:
        calls.append(app)
        original(self, app)

    SigObs.init_app = counting  # type: ignore[method-assign]
    try:
        for n in range(3):
            get(app, "/page", f"req-own-{n}")
    finally:
        SigObs.init_app = original  # type: ignore[method-assign]
    assert calls == []  # the auto-attach found the app's own SigObs and left it alone
    assert app.extensions["sigobs"] is own
    observed = attach.observed(app)
    assert len(access_lines(observed)) == 3
    for n in range(3):
        assert_one_request_observed(observed, f"req-own-{n}", "/page", 200)
        (span,) = [s for s in observed.server_spans()
                   if any(e.attributes.get("request.id") == f"req-own-{n}" for e in s.events)]
        assert event_names(span).count("flask.template_rendered") == 1
        assert event_names(span).count("flask.message_flashed") == 1


def test_concurrent_first_requests_attach_once(attach):
    app = attach.output(attach_apps.create_app("busy"))
    calls = []
    original = SigObs.init_app

    def slow_counting(self: SigObs, app: flask.Flask) -> None:
        calls.append(app)
        threading.Event().wait(0.05)  # widen the window for a second attach
        original(self, app)

    SigObs.init_app = slow_counting  # type: ignore[method-assign]
    observed = Observed(app, None, *app.config["_test_output"])  # type: ignore[arg-type]
    try:
        with observed.serve() as base:
            start = threading.Barrier(12)
            statuses: list[int] = []

            def client(n: int) -> None:
                start.wait(5)
                statuses.append(http(f"{base}/items/{n}", headers={"X-Request-ID": f"req-busy-{n}"})[0])

            threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(20)
    finally:
        SigObs.init_app = original  # type: ignore[method-assign]
    assert statuses == [200] * 12
    assert calls == [app]
    observed = attach.observed(app)
    assert len(access_lines(observed)) == 12
    for n in range(12):
        assert_one_request_observed(observed, f"req-busy-{n}", "/items/<int:item_id>", 200)


def test_a_configuration_error_is_said_once_and_the_app_keeps_serving(attach, caplog):
    app = attach.output(attach_apps.create_app("misconfigured"), SIGOBS_LOG_LEVEL="chatty")
    with caplog.at_level(logging.ERROR, logger="flask_sigobs"):
        statuses = [get(app, "/items/1", f"req-bad-{n}").status_code for n in range(3)]
    assert statuses == [200, 200, 200]
    said = [record.getMessage() for record in caplog.records if record.name == "flask_sigobs"]
    assert len(said) == 1, said
    assert "SIGOBS_LOG_LEVEL" in said[0] and "misconfigured" in said[0]
    assert "sigobs" not in app.extensions
    assert "SIGOBS_LOG_LEVEL" in autoattach.failure(app)


def test_events_land_on_the_span_of_opentelemetry_instruments_flask_class(attach):
    """opentelemetry-instrument replaces flask.Flask by a subclass that makes the server span."""
    FlaskInstrumentor = flask_instrumentor()
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    # The launcher's span goes to its own provider (a distro's, or the process's global one).
    launcher_provider, launcher_spans = TracerProvider(), InMemorySpanExporter()
    launcher_provider.add_span_processor(SimpleSpanProcessor(launcher_spans))
    instrumentor = FlaskInstrumentor()
    instrumentor.instrument(tracer_provider=launcher_provider)
    try:
        assert flask.Flask is not flask.app.Flask
        app = attach.output(attach_apps.create_app("otel-instrumented"))
        assert getattr(app, "_is_instrumented_by_opentelemetry", False)
        assert get(app, "/boom", "req-boom").status_code == 500
        assert get(app, "/items/5", "req-five").status_code == 200
    finally:
        instrumentor.uninstrument()
    observed = attach.observed(app)
    observed.exporter = launcher_spans
    assert observed.sigobs.runtime(app).instrumented_by == "app"
    assert_one_request_observed(observed, "req-five", "/items/<int:item_id>", 200)
    assert_one_request_observed(observed, "req-boom", "/boom", 500)
    assert len(observed.server_spans()) == 2  # never a second span of ours
    (boom,) = [s for s in observed.server_spans() if s.name == "GET /boom"]
    assert "flask.got_request_exception" in event_names(boom)


def test_the_entry_point_is_what_opentelemetry_instrument_loads(attach):
    flask_instrumentor()  # the entry point's base class comes with opentelemetry-instrumentation: [otel]
    from flask_sigobs.instrumentor import SigObsInstrumentor

    autoattach.uninstall()
    (entry_point,) = entry_points(group="opentelemetry_instrumentor", name="flask_sigobs")
    assert entry_point.load() is SigObsInstrumentor
    instrumentor = SigObsInstrumentor()
    assert list(instrumentor.instrumentation_dependencies()) == ["flask >= 3.0"]
    instrumentor.instrument()
    try:
        assert autoattach.installed()
        assert getattr(flask.app.Flask.__call__, "__sigobs_autoattach__", False)
    finally:
        instrumentor.uninstrument()
    assert not autoattach.installed()
    app = attach.output(attach_apps.create_app("not-attached"))
    get(app, "/items/1", "req-none")
    assert "sigobs" not in app.extensions


def test_excluded_paths_still_attach_and_stay_silent(attach):
    app = attach.output(attach_apps.create_app("probe"))
    assert get(app, "/health", "req-health").status_code == 200  # the first request is a probe
    assert "sigobs" in app.extensions
    assert get(app, "/items/9", "req-nine").status_code == 200
    observed = attach.observed(app)
    assert [line["request.id"] for line in access_lines(observed)] == ["req-nine"]


@pytest.mark.parametrize("value", ["flask_sigobs", "requests, flask_sigobs", "*"])
def test_the_disable_variable_names_flask_sigobs(value):
    assert autoattach.disabled({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": value})


def test_the_disable_variable_leaves_it_on_otherwise():
    assert not autoattach.disabled({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "flask,requests"})
    assert not autoattach.disabled({})


def test_an_explicit_sigobs_after_the_first_request_is_ignored_not_an_error(tmp_path, caplog):
    import logging

    from flask import Flask

    from flask_sigobs import SigObs

    app = Flask("late_explicit")
    app.route("/")(lambda: "ok")
    app.config.update(SIGOBS_LOG_FILE=str(tmp_path / "late.log"))
    shared = SigObs()
    shared._sigobs_autoattach = True  # what the launcher's shared instance carries
    shared.init_app(app)
    with caplog.at_level(logging.WARNING, logger="flask_sigobs"):
        SigObs(app)  # the app's own call, too late: one attachment stays
    assert app.extensions["sigobs"] is shared
    assert any("already" in r.getMessage() for r in caplog.records)
    app.test_client().get("/")
    shared.flush(app)
    lines = (tmp_path / "late.log").read_text().splitlines()
    assert sum('"flask.request_finished"' in line for line in lines) == 1
