"""Installed beside a team's own OpenTelemetry: the short ways check themselves, the extras say so.

flask-sigobs takes the SDK and werkzeug by ranges; its short ways (``fastspan``, ``headers``) read
their private fields, so ``selfcheck`` proves them once per process against what is installed.
These tests hold both ways to the same exported spans, and simulate the releases the check is
for (a field of the SDK renamed, a private name gone, werkzeug's ``Headers`` writing otherwise):
the public API is then taken with one line said, no error and no event lost. A feature whose
extra is missing fails at ``init_app`` with a ``ConfigError`` naming the key and the extra.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from flask import Flask, abort
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.trace import SpanKind
from werkzeug.datastructures import Headers

from flask_sigobs import ConfigError, SigObs, auth, fastspan, otel_setup, selfcheck

from .extras import NO_OTEL


@pytest.fixture(autouse=True)
def fresh_verdicts():
    """Each test checks again (and later tests find the verdicts of the real, unpatched libraries)."""
    selfcheck.reset()
    yield
    selfcheck.reset()


def catalog_app(name: str) -> Flask:
    app = Flask(name)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> str:
        auth.login_failed.send(app, user="alice", reason="bad password")
        auth.login_succeeded.send(app, user="alice")
        return "x" * item_id

    @app.get("/denied")
    def denied() -> str:
        auth.access_denied.send(app, user="bob", permission="admin")
        abort(403)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("it broke")

    return app


REQUESTS = ["/items/7?colour=red", "/denied", "/boom", "/nowhere"]
#: Values that change from one request to the next, whichever way the span was made.
_VARYING = {"duration_ms", "request.id", "client.port"}


def exported(observed: Any) -> list[dict[str, Any]]:
    """Each server span as an exporter sees it, in request order, less its ids, times and varying values."""
    out = []
    for span in observed.server_spans():
        data = json.loads(span.to_json())
        for key in ("context", "parent_id", "start_time", "end_time"):
            data.pop(key)
        for event in data["events"]:
            event.pop("timestamp")
            for key in _VARYING:
                event["attributes"].pop(key, None)
        for key in _VARYING:
            data["attributes"].pop(key, None)
        data["dropped"] = (span.dropped_attributes, span.dropped_events, span.dropped_links)
        out.append(data)
    return out


def served(observed: Any) -> list[dict[str, Any]]:
    client = observed.client()
    for path in REQUESTS:
        response = client.get(path, headers={"X-Request-ID": "req-1"})
        assert response.headers["X-Request-ID"] == "req-1"
    return exported(observed)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "flask_sigobs" and r.levelno >= logging.WARNING]


# -- both ways, the same spans ------------------------------------------------------------------

def test_the_short_ways_hold_on_the_installed_sdk_and_werkzeug():
    """Every row of the compatibility matrix (SDK 1.35 to the newest, werkzeug 3.0 to 3.1) keeps the
    short ways: a release where they no longer hold shows here, not only in the benchmark."""
    assert selfcheck.spans().fast, selfcheck.spans().why
    assert selfcheck.headers().fast, selfcheck.headers().why


LIMITS = {"default": {},
          "tight": {"OTEL_SPAN_EVENT_COUNT_LIMIT": "3", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "9",
                    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "2", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "12"}}


@pytest.mark.parametrize("limits", LIMITS)
def test_both_ways_export_identical_spans(observe, span_source, monkeypatch, limits):
    """The same requests (events, auth, an access denied, an exception, a 404) through the short way
    and through the public API (``SIGOBS_FAST_PATH=off``): the same exported spans, attributes,
    events, status and dropped counts, under the SDK's default limits and limits that cut them."""
    for key, value in LIMITS[limits].items():
        monkeypatch.setenv(key, value)
    fast = observe(catalog_app("fast"))
    public = observe(catalog_app("fast"), SIGOBS_FAST_PATH="off")
    assert fast.sigobs.runtime(fast.app).fast_spans and fast.sigobs.runtime(fast.app).fast_headers
    assert not public.sigobs.runtime(public.app).fast_spans and not public.sigobs.runtime(public.app).fast_headers
    ours, theirs = served(fast), served(public)
    assert len(ours) == len(REQUESTS) and ours == theirs
    if span_source == "signals":
        assert all(isinstance(s, fastspan.RequestSpan) for s in fast.server_spans())
    assert not any(isinstance(s, fastspan.RequestSpan) for s in public.server_spans()), "the SDK's own spans"
    if limits == "tight":
        assert any(data["dropped"][0] for data in ours) and any(data["dropped"][1] for data in ours), \
            "the attribute and event limits were reached, and counted"
    assert fast.lines() and len(fast.lines()) == len(public.lines())



# -- a release whose internals changed -----------------------------------------------------------

def _rename_event_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """An SDK release that keeps an event's attributes in ``_event_attributes`` (not ``_attributes``)."""
    Event = sdk_trace.Event
    original = Event.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._event_attributes = self.__dict__.pop("_attributes")

    monkeypatch.setattr(Event, "__init__", init)
    monkeypatch.setattr(Event, "attributes", property(lambda self: self._event_attributes))


def _trace_ids_not_random(monkeypatch: pytest.MonkeyPatch) -> None:
    """An SDK release whose default id generator no longer says its trace ids are random: its spans lose
    the W3C random-trace-id flag, which the short way's root span sets from what the SDK said before."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    if not fastspan._RANDOM_TRACE_ID:
        pytest.skip("this SDK predates the random-trace-id flag (1.4x): nothing to change")
    monkeypatch.setattr(RandomIdGenerator, "is_trace_id_random", lambda self: False)


@pytest.mark.parametrize("change", [_rename_event_attributes, _trace_ids_not_random])
def test_an_sdk_whose_internals_changed_gets_the_public_api_and_loses_nothing(observe, span_source, monkeypatch,
                                                                            caplog, change):
    """The short way would write a field the SDK no longer reads: the start-up check sees it, the
    public API makes every span, one line says so, and every request, event and status is exported."""
    expected = served(observe(catalog_app("before"), SIGOBS_FAST_PATH="off"))
    change(monkeypatch)
    selfcheck.reset()
    with caplog.at_level(logging.DEBUG, logger="flask_sigobs"):
        observed = observe(catalog_app("before"))
        runtime = observed.sigobs.runtime(observed.app)
        assert not runtime.fast_spans and runtime.fast_headers
        got = served(observed)
    assert got == expected, "no event, attribute or status lost"
    said = _warnings(caplog)
    assert len(said) == 1 and "spans through the public API" in said[0] and "opentelemetry-sdk" in said[0], said
    observe(catalog_app("again"))  # a second app: the verdict is the process's, said once
    assert len(_warnings(caplog)) == 1


def test_an_sdk_without_a_private_name_still_imports_and_serves(tmp_path):
    """A release without ``opentelemetry.sdk.trace._Span``: flask-sigobs imports, the public API
    makes the span with its events, and one line names what is missing."""
    script = textwrap.dedent("""
        import logging, sys, types
        import opentelemetry.sdk.trace as sdk_trace
        # A release that renamed _Span: importers no longer find it (the SDK's own code, reading its
        # module's globals, still does).
        renamed = types.ModuleType(sdk_trace.__name__)
        renamed.__dict__.update({k: v for k, v in vars(sdk_trace).items() if k != "_Span"})
        sys.modules[sdk_trace.__name__] = renamed
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
        from flask import Flask
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from flask_sigobs import SigObs, auth
        app = Flask("gone")
        exporter = InMemorySpanExporter()
        app.config.update(SIGOBS_SPAN_EXPORTER=exporter, SIGOBS_LOG_FILE=sys.argv[1])
        @app.get("/")
        def index():
            auth.login_succeeded.send(app, user="alice")
            return "ok"
        sigobs = SigObs(app)
        assert app.test_client().get("/").status_code == 200
        sigobs.runtime(app).tracer_provider.force_flush()
        (span,) = exporter.get_finished_spans()
        print(sorted(event.name for event in span.events))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "log.jsonl")], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
    assert done.returncode == 0, done.stderr
    assert "auth.login_succeeded" in done.stdout and "flask.request_finished" in done.stdout
    said = [line for line in done.stderr.splitlines() if line.startswith("flask_sigobs WARNING")]
    assert len(said) == 1 and "_Span" in said[0] and "public API" in said[0], done.stderr


def test_a_werkzeug_whose_headers_changed_gets_its_public_api(observe, monkeypatch, caplog):
    """A werkzeug that writes header names otherwise (title case here): the short way would differ
    from it, so werkzeug's own ``headers[name] = value`` writes the request id, and one line says so."""
    original = Headers.set

    def title_case(self: Any, _key: str, _value: Any, **kw: Any) -> None:
        original(self, _key.title(), _value, **kw)

    monkeypatch.setattr(Headers, "set", title_case)
    with caplog.at_level(logging.DEBUG, logger="flask_sigobs"):
        observed = observe(catalog_app("headers"), SIGOBS_SPAN_SOURCE="signals")
        runtime = observed.sigobs.runtime(observed.app)
        assert runtime.fast_spans and not runtime.fast_headers
        response = observed.client().get("/items/3", headers={"X-Request-ID": "req-9"})
    assert response.status_code == 200 and ("X-Request-Id", "req-9") in list(response.headers.items())
    (finished,) = observed.events("flask.request_finished")
    assert finished["http.response.body.size"] == 3, "Content-Length read through werkzeug's property"
    said = _warnings(caplog)
    assert len(said) == 1 and "response headers through the public API" in said[0] and "werkzeug" in said[0]


def test_fast_path_off_is_said_once_and_needs_no_check(observe, monkeypatch, caplog):
    called = []
    monkeypatch.setattr(selfcheck, "_check_spans", lambda: called.append(1))
    with caplog.at_level(logging.INFO, logger="flask_sigobs"):
        for name in ("one", "two"):
            observe(catalog_app(name), SIGOBS_FAST_PATH="off")
    assert called == [], "forced off, the short way is not even checked"
    said = [r.getMessage() for r in caplog.records if r.name == "flask_sigobs"]
    assert said == ["flask-sigobs: spans and response headers through the public API (SIGOBS_FAST_PATH=off)"]


def test_fast_path_takes_auto_or_off():
    app = Flask("bad")
    app.config.update(SIGOBS_FAST_PATH="sometimes", SIGOBS_LOG_FILE=os.devnull)
    with pytest.raises(ConfigError, match="SIGOBS_FAST_PATH"):
        SigObs(app)


def test_a_failing_check_is_a_verdict_not_an_error(monkeypatch):
    def broken() -> selfcheck.Verdict:
        raise RuntimeError("surprise")

    monkeypatch.setattr(selfcheck, "_check_headers", broken)
    verdict = selfcheck.headers()
    assert not verdict.fast and "surprise" in verdict.why


# -- the extras ----------------------------------------------------------------------------------

def test_span_source_otel_without_the_instrumentation_names_the_key_and_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.flask", None)  # as if not installed
    app = catalog_app("no_otel")
    app.config.update(SIGOBS_SPAN_SOURCE="otel", SIGOBS_LOG_FILE=str(tmp_path / "log"))
    with pytest.raises(ConfigError) as raised:
        SigObs(app)
    assert "SIGOBS_SPAN_SOURCE=otel" in str(raised.value) and "pip install 'flask-sigobs[otel]'" in str(raised.value)
    assert "sigobs" not in app.extensions and app.before_request_funcs.get(None, []) == []


def test_the_default_span_source_needs_no_instrumentation(tmp_path):
    """Without opentelemetry-instrumentation at all (the base install), everything imports and serves."""
    script = textwrap.dedent("""
        import sys
        for name in ("opentelemetry.instrumentation", "opentelemetry.instrumentation.flask", "grpc"):
            sys.modules[name] = None  # not installed
        from flask import Flask
        import flask_sigobs, flask_sigobs.cli, flask_sigobs.doctor, flask_sigobs.autoattach
        from flask_sigobs import SigObs
        app = Flask("base")
        app.config.update(SIGOBS_LOG_FILE=sys.argv[1])
        app.route("/")(lambda: "ok")
        SigObs(app)
        assert app.test_client().get("/").status_code == 200
        print("served")
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "log")], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
    assert done.returncode == 0 and "served" in done.stdout, done.stderr


@pytest.mark.parametrize("key", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"])
def test_grpc_without_its_exporter_names_the_key_and_the_extra(monkeypatch, key):
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", key: "grpc"}
    with pytest.raises(ConfigError) as raised:
        otel_setup.otlp_exporter(environ)
    assert f"{key}=grpc" in str(raised.value) and "pip install 'flask-sigobs[grpc]'" in str(raised.value)


@pytest.mark.otel
def test_an_instrumentation_newer_than_tested_is_said_once_and_used(observe, monkeypatch, caplog):
    monkeypatch.setattr(otel_setup, "NEWEST_TESTED_INSTRUMENTATION", "0.1b0")
    from flask_sigobs import errors

    monkeypatch.setattr(errors, "failures", errors.Counter())
    with caplog.at_level(logging.WARNING, logger="flask_sigobs"):
        observed = observe(catalog_app("newer"), SIGOBS_SPAN_SOURCE="otel")
        observe(catalog_app("newer_too"), SIGOBS_SPAN_SOURCE="otel")
        assert observed.client().get("/items/2").status_code == 200
    (span,) = observed.server_spans()
    assert span.kind is SpanKind.SERVER and "auth.login_succeeded" in [e.name for e in span.events]
    said = [m for m in _warnings(caplog) if "newer" in m]
    assert len(said) == 1 and "0.1b0" in said[0], _warnings(caplog)


def test_doctor_says_which_way(observe, monkeypatch):
    from flask_sigobs import doctor

    for setting, expected in (("auto", "spans: the short way"), ("off", "through the public API (SIGOBS_FAST_PATH=off)")):
        observed = observe(catalog_app(f"doctor_{setting}"), SIGOBS_FAST_PATH=setting, SIGOBS_SPAN_SOURCE="signals")
        report = doctor.diagnose(observed.app, "tests:app", send_test_span=False)
        words = [f.words for f in report.findings if f.check == "fast path"]
        assert any(expected in w for w in words), words


@pytest.mark.skipif(NO_OTEL is None, reason="the base install's row: [otel] is installed here")
def test_the_base_install_row_has_no_instrumentation():
    """The ``newest`` row proves the base install: the instrumentation really is absent there."""
    with pytest.raises(ImportError):
        import opentelemetry.instrumentation.flask  # noqa: F401


def test_an_exporter_that_raises_is_a_counted_failure_not_a_traceback(caplog):
    """SDK 1.35's OTLP/HTTP exporter raises on a read timeout where newer ones return FAILURE: the
    export queue counts either as failed spans, reported on our logger, with no traceback per batch."""
    from opentelemetry.sdk.trace import TracerProvider

    from flask_sigobs.spanqueue import ExportQueue

    class Raising:
        def export(self, spans: Any) -> Any:
            raise TimeoutError("read timed out")

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    queue = ExportQueue(Raising(), report_interval=0.0)  # type: ignore[arg-type]
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(queue)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            provider.get_tracer("t").start_span("one").end()
        provider.shutdown()
    assert queue.failed == 3 and queue.exported == 0
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry") and r.exc_info], "no SDK traceback"
    assert any("could not export" in r.getMessage() for r in caplog.records if r.name == "flask_sigobs")
