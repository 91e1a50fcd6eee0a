"""Attaching changes nothing the app can see, and every request still says what became of it.

Issue 21: an app that keeps a middleware object on ``app.wsgi_app`` and reads it back
(``current_app.wsgi_app.script_name``, a reverse-proxy prefix middleware) answered 500 to every
request once attached, whether by ``SigObs(app)``, ``init_app`` in a factory, lazily on the first
request, ``sigobs run`` or ``opentelemetry-instrument``: attaching replaced ``app.wsgi_app``. Here
each of those keeps the app's own object (same object, type and attributes), middleware put on
before or after the attach works, and the request still gets its span, request id and events.
The launchers run real gunicorn processes exporting to a real OTLP/HTTP receiver on loopback.

Also issue 21: an ``after_request`` function or the session save that raises (Flask then never
sends ``request_finished``) still makes one access line, status 500, at error, with the exception
recorded. And issue 24: with ``SIGOBS_SPAN_SOURCE=otel``, a request stopped before the
instrumentation's ``before_request`` (a blueprint's ``url_value_preprocessor`` that aborts or
redirects, a gate registered before the attach) still gets its server span and trace id.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import flask
import pytest
from flask import Blueprint, Flask, abort, redirect, request, session
from flask.sessions import SecureCookieSessionInterface
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import make_server

from flask_sigobs import SigObs, autoattach

from . import middleware_apps
from .conftest import Observed
from .extras import NO_OTEL
from .middleware_apps import Prefix, Tagging
from .servers import REPO, OtlpSink, free_port, http_get, json_lines, server_env


def prefixed_app(name: str) -> tuple[Flask, Prefix]:
    """Issue 21's reproduction: a view that reads the app's middleware object back."""
    app = Flask(name)
    prefix = Prefix(app.wsgi_app)
    app.wsgi_app = prefix  # type: ignore[method-assign]

    @app.get("/")
    def index() -> Any:
        return flask.current_app.wsgi_app.script_name  # type: ignore[attr-defined]

    return app, prefix


def access_lines(observed: Observed, request_id: str) -> list[dict[str, Any]]:
    return [line for line in observed.events("flask.request_finished") if line.get("request.id") == request_id]


def span_of(observed: Observed, line: dict[str, Any]) -> Any:
    """The one server span of the line's trace, whose ids are the line's."""
    assert line["trace_id"] and line["span_id"], line
    spans = [span for span in observed.server_spans() if format(span.context.trace_id, "032x") == line["trace_id"]]
    assert len(spans) == 1, (line, observed.server_spans())
    (span,) = spans
    assert format(span.context.span_id, "016x") == line["span_id"]
    return span


def assert_observed(observed: Observed, request_id: str, status: int, route: str | None) -> Any:
    """One access line for the request, one server span with its ids and one set of its events."""
    lines = access_lines(observed, request_id)
    assert len(lines) == 1, observed.lines()
    (line,) = lines
    assert line["http.response.status_code"] == status
    assert line.get("http.route") == route
    span = span_of(observed, line)
    names = [event.name for event in span.events]
    assert names.count("flask.request_started") == 1 and names.count("flask.request_finished") == 1, names
    assert span.attributes["http.response.status_code"] == status
    return span


def get(base: str, path: str, request_id: str, echoed: bool = True, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """One request, redirects not followed; flask-sigobs must have echoed its request id (unless
    Flask never finished the response: nothing can add a header to it then)."""
    status, answer, body = http_get(base + path, headers={"X-Request-ID": request_id, **headers})
    if echoed:
        assert answer.get("x-request-id") == request_id, "flask-sigobs did not see the request"
    return status, answer, body


# -- app.wsgi_app stays the app's own ----------------------------------------------------------

def test_sigobs_app_leaves_the_middleware_the_app_reads_back(observe):
    app, prefix = prefixed_app("prefix_sigobs")
    observed = observe(app)
    assert app.wsgi_app is prefix and type(app.wsgi_app) is Prefix and app.wsgi_app.script_name == "/"
    with observed.serve() as base:
        status, _, body = get(base, "/", "req-prefix")
    assert (status, body) == (200, b"/")
    assert assert_observed(observed, "req-prefix", 200, "/").name == "GET /"
    assert app.wsgi_app is prefix


def test_init_app_in_a_factory_leaves_each_app_its_middleware(observe):
    """One ``SigObs``, two apps of one factory, each keeping its own middleware object."""
    sigobs = SigObs()
    first = observe(middleware_apps.create_app(name="factory_one"), sigobs=sigobs)
    second = observe(middleware_apps.create_app(name="factory_two"), sigobs=sigobs)
    for number, observed in enumerate([first, second]):
        assert type(observed.app.wsgi_app) is Prefix
        with observed.serve() as base:
            status, _, body = get(base, "/items/7", f"req-factory-{number}")
        assert status == 200 and json.loads(body)["prefix"] == "/"
        assert_observed(observed, f"req-factory-{number}", 200, "/items/<int:item_id>")


def test_middleware_put_on_after_the_attach_works_and_the_request_is_observed(observe):
    """``app.wsgi_app`` is still Flask's own method after the attach; middleware put on then (read
    back by the view, ProxyFix deciding the client address) runs once per request, inside ours."""
    app = Flask("after_attach")

    @app.get("/")
    def index() -> Any:
        prefix = flask.current_app.wsgi_app
        return {"prefix": prefix.script_name, "tagged": request.environ.get("tests.tagged", False),
                "client": request.remote_addr}

    observed = observe(app, SIGOBS_TRUSTED_PROXIES=0)
    assert app.wsgi_app.__func__ is Flask.wsgi_app and app.wsgi_app.__self__ is app  # as Flask made it
    tagging = Tagging(ProxyFix(app.wsgi_app, x_for=1))
    app.wsgi_app = Prefix(tagging)  # type: ignore[method-assign]
    with observed.serve() as base:
        status, _, body = get(base, "/", "req-after", **{"X-Forwarded-For": "203.0.113.9"})
    assert status == 200
    assert json.loads(body) == {"prefix": "/", "tagged": True, "client": "203.0.113.9"}
    assert tagging.calls == 1
    span = assert_observed(observed, "req-after", 200, "/")
    (line,) = access_lines(observed, "req-after")
    assert line["client.address"] == "203.0.113.9" == span.attributes["client.address"]


def test_a_middleware_that_copies_the_environ_after_the_attach_keeps_the_span(observe):
    """Flask gets a copy of the environ ours made: the span and the events are still found."""
    app = Flask("copying")

    @app.get("/work")
    def work() -> Any:
        return "done"

    observed = observe(app)
    inner = app.wsgi_app
    app.wsgi_app = lambda environ, start_response: inner(dict(environ), start_response)  # type: ignore[method-assign]
    with observed.serve() as base:
        assert get(base, "/work", "req-copied")[0] == 200
    assert_observed(observed, "req-copied", 200, "/work")


def test_an_app_mounted_inside_another_after_the_attach_is_observed_once(observe):
    """``app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {...})`` after the attach: a request for
    the mounted app passes through the outer app's ``Flask.__call__`` first, and is still the
    mounted app's alone (its line, its span), never a line of the outer app."""
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    outer_app, inner_app = Flask("outer"), Flask("inner")
    outer_app.get("/")(lambda: "outer")
    inner_app.get("/items/<int:item_id>")(lambda item_id: f"inner {item_id}")
    outer, inner = observe(outer_app), observe(inner_app)
    outer_app.wsgi_app = DispatcherMiddleware(outer_app.wsgi_app, {"/inner": inner_app})  # type: ignore[method-assign]
    with outer.serve() as base:
        assert get(base, "/inner/items/3", "req-mounted")[2] == b"inner 3"
        assert get(base, "/", "req-outer")[2] == b"outer"
    assert_observed(inner, "req-mounted", 200, "/items/<int:item_id>")
    assert_observed(outer, "req-outer", 200, "/")
    assert [line["request.id"] for line in outer.events("flask.request_finished")] == ["req-outer"]
    assert [line["request.id"] for line in inner.events("flask.request_finished")] == ["req-mounted"]
    assert len(outer.server_spans()) == 1 and len(inner.server_spans()) == 1


@pytest.fixture
def autoattached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Flask]]:
    """The launchers' attach, in this process: every app attached on its first request."""
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(key, raising=False)
    autoattach.install()
    made: list[Flask] = []
    yield made
    autoattach.uninstall()
    for app in made:
        if "sigobs" in app.extensions:
            app.extensions["sigobs"].runtime(app).tracer_provider.shutdown()


@pytest.mark.parametrize("span_source", ["signals", "otel"])
def test_attached_lazily_on_the_first_request_leaves_the_middleware(autoattached, tmp_path, span_source):
    app, prefix = prefixed_app(f"prefix_lazy_{span_source}")
    exporter = InMemorySpanExporter()
    app.config.update(SIGOBS_SPAN_EXPORTER=exporter, SIGOBS_LOG_FILE=str(tmp_path / "lazy.log"),
                      SIGOBS_SPAN_SOURCE=span_source)
    autoattached.append(app)
    assert "sigobs" not in app.extensions
    response = app.test_client().get("/", headers={"X-Request-ID": "req-lazy"})
    assert (response.status_code, response.get_data()) == (200, b"/")
    assert "sigobs" in app.extensions and app.wsgi_app is prefix
    observed = Observed(app, app.extensions["sigobs"], exporter, tmp_path / "lazy.log")
    assert_observed(observed, "req-lazy", 200, "/")


def test_a_server_given_app_wsgi_app_still_gets_one_line_and_one_ended_span_per_request(observe):
    """A server handed ``app.wsgi_app`` itself never calls ``Flask.__call__``: each request still
    writes its access line and ends its span, and no span is left as the next request's parent."""
    app = Flask("given_wsgi_app")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return str(item_id)

    observed = observe(app)
    server = make_server("127.0.0.1", 0, app.wsgi_app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        for number in range(3):
            assert get(base, f"/items/{number}", f"req-given-{number}")[0] == 200
    finally:
        server.shutdown()
        thread.join(5)
    spans = [assert_observed(observed, f"req-given-{number}", 200, "/items/<int:item_id>") for number in range(3)]
    assert all(span.parent is None for span in spans)
    assert len({span.context.trace_id for span in spans}) == 3


# -- one access line, whatever fails after the view --------------------------------------------

def failing_after_view_app(name: str, what: str) -> Flask:
    app = Flask(name)
    app.config["SECRET_KEY"] = "not-a-secret"

    @app.get("/fails")
    def fails() -> Any:
        session["seen"] = True
        return "the view itself was fine"

    if what == "after_request":
        @app.after_request
        def broken(response: Any) -> Any:
            raise RuntimeError("after_request failed")
    elif what == "session_save":
        class BrokenSessions(SecureCookieSessionInterface):
            def save_session(self, app: Flask, session: Any, response: Any) -> None:
                raise OSError("the session store is down")

        app.session_interface = BrokenSessions()
    return app


EXCEPTION_OF = {"after_request": "RuntimeError", "session_save": "OSError"}


@pytest.mark.parametrize("what", list(EXCEPTION_OF))
def test_what_fails_after_the_view_still_makes_one_access_line(observe, what, caplog):
    observed = observe(failing_after_view_app(f"fails_{what}", what))
    with caplog.at_level(logging.CRITICAL, logger=observed.app.logger.name), observed.serve() as base:
        status, _, _ = get(base, "/fails", f"req-{what}", echoed=False)
    assert status == 500
    span = assert_observed(observed, f"req-{what}", 500, "/fails")
    (line,) = access_lines(observed, f"req-{what}")
    assert line["level"] == "error"
    (failure,) = [event for event in observed.events("flask.got_request_exception")
                  if event["request.id"] == f"req-{what}"]
    assert failure["exception.type"] == EXCEPTION_OF[what]
    assert span.status.status_code is StatusCode.ERROR
    names = [event.name for event in span.events]
    assert names.count("flask.got_request_exception") == 1
    assert names.count("exception") == 1  # the exception recorded once on the span
    assert line["trace_id"] == format(span.context.trace_id, "032x")


def test_an_exception_flask_propagates_still_makes_one_access_line(observe):
    """``PROPAGATE_EXCEPTIONS`` (testing, debug): the exception leaves Flask, no ``request_finished``."""
    app = failing_after_view_app("propagates", "after_request")
    app.config["PROPAGATE_EXCEPTIONS"] = True
    observed = observe(app)
    with pytest.raises(RuntimeError, match="after_request failed"):
        observed.client().get("/fails", headers={"X-Request-ID": "req-propagated"})
    lines = access_lines(observed, "req-propagated")
    assert len(lines) == 1, observed.lines()
    assert lines[0]["level"] == "error" and lines[0]["http.response.status_code"] == 500
    span = span_of(observed, lines[0])
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events].count("exception") == 1


# -- a request stopped before before_request keeps its span (issue 24) -------------------------

def stopped_early_app() -> Flask:
    app = Flask("stopped_early")

    @app.before_request
    def gate() -> Any:  # registered before the attach: runs before the instrumentation's
        if request.path == "/private":
            return redirect("/login")
        return None

    @app.get("/private")
    def private() -> Any:
        return "never"

    shop = Blueprint("shop", __name__, url_prefix="/<lang>")

    @shop.url_value_preprocessor
    def language(endpoint: str | None, values: dict[str, Any] | None) -> None:
        lang = (values or {}).pop("lang", None)
        if lang == "old":
            abort(redirect("/en/items"))
        if lang not in ("en", "fr"):
            abort(404)
        flask.g.lang = lang

    @shop.get("/items")
    def items() -> Any:
        return f"items in {flask.g.lang}"

    app.register_blueprint(shop)
    return app


@pytest.mark.parametrize("span_source", ["otel", "signals"])
def test_a_request_stopped_before_before_request_has_its_span(observe, span_source):
    observed = observe(stopped_early_app())
    cases = [("/de/items", 404, "/<lang>/items"), ("/old/items", 302, "/<lang>/items"),
             ("/private", 302, "/private"), ("/en/items", 200, "/<lang>/items")]
    with observed.serve() as base:
        for number, (path, status, _) in enumerate(cases):
            assert get(base, path, f"req-early-{number}")[0] == status
    for number, (path, status, route) in enumerate(cases):
        span = assert_observed(observed, f"req-early-{number}", status, route)
        assert span.name == f"GET {route}"
        assert span.status.status_code is StatusCode.UNSET  # a 4xx or a redirect is no error


# -- the launchers, under gunicorn ------------------------------------------------------------

LAUNCHERS = {
    "sigobs-run": [sys.executable, "-m", "flask_sigobs", "run", "--"],
    "opentelemetry-instrument": [str(Path(sys.executable).parent / "opentelemetry-instrument")],
}


@contextlib.contextmanager
def launched_gunicorn(tmp_path: Path, launcher: str, target: str, env: dict[str, str]) -> Iterator[str]:
    """``LAUNCHER gunicorn -w 2 TARGET`` on a free loopback port, in its own process group."""
    port = free_port()
    errors = tmp_path / f"gunicorn-{launcher}.err"
    command = [*LAUNCHERS[launcher], sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
               "--graceful-timeout", "15", target]
    with open(errors, "wb") as stderr:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {process.returncode}:\n{errors.read_text()}")
            booted = errors.read_text(errors="replace").count("Booting worker with pid:")
            if booted >= 2:
                with contextlib.suppress(OSError):
                    if http_get(f"http://127.0.0.1:{port}/health", timeout=2)[0] == 200:
                        break
            assert time.monotonic() < deadline, errors.read_text()
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
        process.send_signal(signal.SIGTERM)  # graceful: each worker exports its last spans
        process.wait(30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.mark.slow  # gunicorn with two workers, once a launcher
@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_each_launcher_leaves_the_middleware_under_gunicorn(tmp_path: Path, launcher: str):
    if launcher == "opentelemetry-instrument" and NO_OTEL:
        pytest.skip(NO_OTEL)  # the launcher is opentelemetry-instrumentation's
    log = tmp_path / "lines.jsonl"
    service = f"prefixed-{launcher}-{os.getpid()}"
    with OtlpSink() as sink:
        env = server_env(OTEL_TRACES_EXPORTER=None, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=sink.endpoint,
                         OTEL_BSP_SCHEDULE_DELAY="100", SIGOBS_SERVICE_NAME=service, OTEL_SERVICE_NAME=service,
                         SIGOBS_LOG_FILE=str(log), OTEL_SEMCONV_STABILITY_OPT_IN="http")
        sent = {}
        with launched_gunicorn(tmp_path, launcher, "tests.middleware_apps:app", env) as base:
            for number in range(6):
                path = "/" if number % 2 == 0 else f"/items/{number}"
                request_id = f"req-{launcher}-{number}"
                status, headers, body = http_get(base + path, headers={"X-Request-ID": request_id})
                assert status == 200, body
                assert headers.get("x-request-id") == request_id
                assert (body == b"/") if path == "/" else (json.loads(body)["prefix"] == "/")
                sent[request_id] = "/" if path == "/" else "/items/<int:item_id>"
        lines = json_lines(log.read_bytes())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            traces = {span.trace_id: span for span in sink.server_spans()}
            if len(traces) >= len(sent):
                break
            time.sleep(0.2)
    access = {line["request.id"]: line for line in lines if line.get("event") == "flask.request_finished"}
    assert sorted(access) == sorted(sent), lines
    for request_id, route in sent.items():
        line = access[request_id]
        assert line["http.route"] == route and line["http.response.status_code"] == 200
        span = traces.get(line["trace_id"])
        assert span is not None, f"{request_id}: no span of trace {line['trace_id']} received"
        assert span.span_id == line["span_id"] and span.name == f"GET {route}"
        assert [name for name, _ in span.events].count("flask.request_finished") == 1


@pytest.mark.otel
@pytest.mark.parametrize("span_source", ["signals"])  # the app's own span, whatever the setting
def test_a_request_stopped_before_before_request_keeps_the_apps_own_span(observe, span_source):
    """An app its own code instrumented (or opentelemetry-instrument did): its span starts in its
    before_request function, which a url_value_preprocessor's redirect never lets run. flask-sigobs
    starts that same span at request_started, once; an excluded path still gets the app's own span
    (the app's instrumentation is the app's); and uninstrument_app still takes it all away."""
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    app = stopped_early_app()

    @app.get("/health")
    def health() -> Any:
        return "ok"

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    FlaskInstrumentor.instrument_app(app, tracer_provider=provider)
    observed = observe(app)
    assert observed.sigobs.runtime(app).instrumented_by == "app"
    cases = [("/old/items", 302), ("/de/items", 404), ("/private", 302), ("/en/items", 200)]
    with observed.serve() as base:
        for number, (path, status) in enumerate(cases):
            assert get(base, path, f"req-own-{number}")[0] == status
        assert get(base, "/health", "req-own-health", echoed=False)[0] == 200
    spans = exporter.get_finished_spans()
    by_trace = {format(span.context.trace_id, "032x"): span for span in spans}
    for number, (path, status) in enumerate(cases):
        (line,) = access_lines(observed, f"req-own-{number}")
        assert line["trace_id"] in by_trace, (path, line)
        span = by_trace[line["trace_id"]]
        assert format(span.context.span_id, "016x") == line["span_id"]
        assert span.attributes["http.response.status_code"] == status
        assert [e.name for e in span.events].count("flask.request_started") == 1
    assert len(spans) == len(cases) + 1, "one span a request, the excluded /health's included"
    assert not observed.events("flask.request_finished") or all(
        line.get("url.path") != "/health" for line in observed.events("flask.request_finished"))

    FlaskInstrumentor.uninstrument_app(app)
    client = app.test_client()
    assert client.get("/en/items").status_code == 200
    assert client.get("/old/items").status_code == 302
    assert len(exporter.get_finished_spans()) == len(spans), "uninstrumented: no span any more"
