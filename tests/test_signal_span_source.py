"""``SIGOBS_SPAN_SOURCE=signals`` builds a server span that looks like the standard one."""

from __future__ import annotations

import pytest
import structlog
from flask import Flask, abort, current_app
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from .conftest import http
from .extras import flask_instrumentor

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


def catalog_app(name: str) -> Flask:
    app = Flask(name)

    @app.route("/items/<int:item_id>")
    def item(item_id: int):
        # this app's provider: the global one belongs to whichever test app came first
        provider = current_app.extensions["sigobs"].runtime().tracer_provider
        with trace.get_tracer("shop", tracer_provider=provider).start_as_current_span("load item"):
            structlog.get_logger().info("loading", item_id=item_id)
        return {"id": item_id}

    @app.route("/gone")
    def gone():
        abort(410)

    @app.route("/down")
    def down():
        return "maintenance", 503

    @app.route("/boom")
    def boom():
        raise KeyError("missing-key")

    return app


REQUESTS = ["/items/7?colour=red", "/gone", "/down", "/boom", "/nowhere"]


def _server_spans(spans):
    return {span.attributes["url.path"]: span for span in spans if span.kind == SpanKind.SERVER}


@pytest.mark.otel
def test_the_signal_span_matches_the_standard_instrumentation(observe):
    ours = observe(catalog_app("signals_app"), SIGOBS_SPAN_SOURCE="signals")
    standard = observe(catalog_app("standard_app"), SIGOBS_SPAN_SOURCE="otel")
    for observed in (ours, standard):
        with observed.serve() as base:
            for path in REQUESTS:
                http(base + path, headers={"User-Agent": "compare/1"})
    assert ours.sigobs.runtime(ours.app).instrumented_by == "flask-sigobs signals"
    mine, theirs = _server_spans(ours.spans()), _server_spans(standard.spans())
    assert set(mine) == set(theirs) == {"/items/7", "/gone", "/down", "/boom", "/nowhere"}
    for path in mine:
        a, b = mine[path], theirs[path]
        assert a.name == b.name, path
        assert a.status.status_code == b.status.status_code, path
        ignore = {"server.port", "client.port", "server.address"}  # two servers, two ports
        assert a.attributes["server.address"].split(":")[0] == b.attributes["server.address"].split(":")[0]
        assert {k: v for k, v in a.attributes.items() if k not in ignore and k != "enduser.id"} == \
            {k: v for k, v in b.attributes.items() if k not in ignore}, path
        assert [e.name for e in a.events if e.name != "exception"] == \
            [e.name for e in b.events if e.name != "exception"], path
        assert [e.name for e in a.events].count("exception") == [e.name for e in b.events].count("exception")
    assert mine["/items/7"].name == "GET /items/<int:item_id>"
    assert mine["/boom"].status.status_code == StatusCode.ERROR
    assert mine["/down"].status.status_code == StatusCode.ERROR
    assert mine["/gone"].status.status_code == StatusCode.UNSET


def test_the_callers_traceparent_is_honoured_and_a_malformed_one_ignored(observe):
    observed = observe(catalog_app("propagation"), SIGOBS_SPAN_SOURCE="signals")
    client = observed.client()
    client.get("/items/1", headers={"traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"})
    client.get("/items/2", headers={"traceparent": "00-zzzz-not-a-trace-01"})
    client.get("/items/3", headers={"traceparent": "\x1b[2J" + "f" * 5000})
    spans = _server_spans(observed.spans())
    child = spans["/items/1"]
    assert format(child.context.trace_id, "032x") == PARENT_TRACE
    assert format(child.parent.span_id, "016x") == PARENT_SPAN
    for path in ("/items/2", "/items/3"):
        assert spans[path].parent is None
        assert format(spans[path].context.trace_id, "032x") != PARENT_TRACE
    lines = {line["url.path"]: line for line in observed.events("flask.request_finished")}
    assert lines["/items/1"]["trace_id"] == PARENT_TRACE


def test_app_spans_and_log_lines_nest_under_the_signal_span(observe):
    observed = observe(catalog_app("nesting"), SIGOBS_SPAN_SOURCE="signals")
    observed.client().get("/items/5")
    spans = observed.spans()
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    inner = next(s for s in spans if s.name == "load item")
    assert inner.parent.span_id == server.context.span_id
    assert inner.context.trace_id == server.context.trace_id
    loading = observed.events("loading")[0]
    access = observed.events("flask.request_finished")[0]
    assert loading["trace_id"] == access["trace_id"] == format(server.context.trace_id, "032x")
    assert access["span_id"] == format(server.context.span_id, "016x")
    # the context is left after the request: nothing leaks into the next one
    assert not trace.get_current_span().get_span_context().is_valid


def test_every_signal_lands_on_the_signal_span(observe):
    observed = observe(catalog_app("all_signals"), SIGOBS_SPAN_SOURCE="signals", SIGOBS_SIGNALS="all")
    with observed.serve() as base:
        http(base + "/boom")
    (span,) = [s for s in observed.spans() if s.kind == SpanKind.SERVER]
    names = [event.name for event in span.events]
    assert names[:2] == ["flask.appcontext_pushed", "flask.request_started"]
    assert names[-3:] == ["flask.request_tearing_down", "flask.appcontext_tearing_down", "flask.appcontext_popped"]
    assert "flask.got_request_exception" in names and names.count("exception") == 1
    assert span.attributes["error.type"] == "500"
    times = [event.timestamp for event in span.events]
    assert span.start_time <= times[0] and times == sorted(times) and times[-1] <= span.end_time


def test_an_instrumented_app_keeps_its_span_whatever_the_setting(observe):
    app = catalog_app("already")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    flask_instrumentor().instrument_app(app, tracer_provider=provider)
    observed = observe(app, SIGOBS_SPAN_SOURCE="signals")
    observed.client().get("/items/1")
    servers = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert len(servers) == 1 and [s for s in observed.spans() if s.kind == SpanKind.SERVER] == []
    assert "flask.request_finished" in [e.name for e in servers[0].events]
