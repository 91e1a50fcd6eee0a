"""One request, one id: the request id, trace id and span id on every line the request writes."""

from __future__ import annotations

import asyncio
import logging
import threading

import flask
import structlog
from flask import Flask, Response, stream_with_context

from .conftest import http


def correlated_app() -> Flask:
    app = Flask("correlated")

    @app.route("/work")
    def work():
        structlog.get_logger("shop.orders").info("order_placed", order_id=17)
        app.logger.warning("stock low for %s", "teapot")
        logging.getLogger("shop.payments").info("card charged")
        return "done"

    @app.route("/async")
    async def async_view():
        await asyncio.sleep(0)
        structlog.get_logger().info("inside_async")
        return "async done"

    @app.route("/stream")
    def stream():
        def generate():
            yield "a"
            structlog.get_logger().info("inside_stream")
            yield "b"

        return Response(stream_with_context(generate()))

    return app


def test_the_request_id_is_taken_when_safe_generated_otherwise_and_echoed(observe):
    observed = observe(correlated_app())
    with observed.serve() as base:
        _, ok, _ = http(f"{base}/work", headers={"X-Request-ID": "req-2026.11:abc_DEF"})
        _, forged, _ = http(f"{base}/work", headers={"X-Request-ID": "evil\" injected=1"})
        _, long, _ = http(f"{base}/work", headers={"X-Request-ID": "a" * 200})
        _, none, _ = http(f"{base}/work")
    assert ok["X-Request-ID"] == "req-2026.11:abc_DEF"
    for headers in (forged, long, none):
        assert len(headers["X-Request-ID"]) == 32 and int(headers["X-Request-ID"], 16) >= 0
    assert len({forged["X-Request-ID"], long["X-Request-ID"], none["X-Request-ID"]}) == 3
    ids = [line["request.id"] for line in observed.events("flask.request_finished")]
    assert ids == [ok["X-Request-ID"], forged["X-Request-ID"], long["X-Request-ID"], none["X-Request-ID"]]


def test_the_request_id_header_is_configurable(observe):
    observed = observe(correlated_app(), SIGOBS_REQUEST_ID_HEADER="X-Correlation-ID")
    response = observed.client().get("/work", headers={"X-Correlation-ID": "corr-1"})
    assert response.headers["X-Correlation-ID"] == "corr-1"
    assert observed.events("flask.request_finished")[0]["request.id"] == "corr-1"


def test_the_request_id_header_replaces_the_apps_own_and_keeps_every_other_header(observe):
    app = correlated_app()

    @app.route("/own-id")
    def own_id():
        response = Response("mine")
        response.headers.add("x-request-id", "the app's")  # any case, twice: one header remains
        response.headers.add("X-REQUEST-ID", "the app's again")
        response.headers["X-Other"] = "kept"
        return response

    observed = observe(app)
    client = observed.client()
    for path in ("/own-id", "/work"):
        response = client.get(path, headers={"X-Request-ID": f"id-{path[1:]}"})
        assert response.status_code == 200
        assert [value for key, value in response.headers if key.lower() == "x-request-id"] == [f"id-{path[1:]}"]
    assert response.headers["Content-Type"].startswith("text/html")
    assert client.get("/own-id").headers["X-Other"] == "kept"


def test_the_access_line_reads_the_body_size_as_werkzeug_does(observe):
    """The request id header and the body size go through werkzeug's header list directly: the
    same answers as its own property and methods, for its own headers class and any other."""
    from werkzeug.datastructures import Headers

    class OwnHeaders(Headers):  # an app's own headers class: its methods are used, not the list
        pass

    app = correlated_app()

    @app.route("/sized")
    def sized():
        return Response("twelve bytes")

    @app.route("/bogus")
    def bogus():
        response = Response("body")
        response.headers["Content-Length"] = "not a number"
        return response

    @app.route("/own")
    def own():
        response = Response("own headers")
        response.headers = OwnHeaders(response.headers)
        return response

    observed = observe(app)
    client = observed.client()
    for path in ("/sized", "/bogus", "/own"):
        response = client.get(path, headers={"X-Request-ID": f"id-{path[1:]}"})
        assert response.headers["X-Request-ID"] == f"id-{path[1:]}"
    lines = {line["url.path"]: line for line in observed.events("flask.request_finished")}
    assert lines["/sized"]["http.response.body.size"] == 12
    assert "http.response.body.size" not in lines["/bogus"], "werkzeug's property says None: no size"
    assert lines["/own"]["http.response.body.size"] == len("own headers")
    assert [lines[path]["request.id"] for path in ("/sized", "/bogus", "/own")] == ["id-sized", "id-bogus", "id-own"]


def test_app_structlog_lines_carry_the_request_correlation(observe):
    observed = observe(correlated_app())
    observed.client().get("/work")
    access = observed.events("flask.request_finished")[0]
    (own,) = observed.events("order_placed")
    assert own["trace_id"] == access["trace_id"]
    assert own["span_id"] == access["span_id"]
    assert own["request.id"] == access["request.id"]
    assert own["service.name"] == "correlated"
    assert own["order_id"] == 17 and own["level"] == "info"


def test_stdlib_records_gain_correlation_when_the_app_configured_logging(observe, caplog):
    # pytest's capture handler on the root logger is "logging the app configured itself":
    # flask-sigobs leaves it in place and adds the correlation fields to its records.
    caplog.set_level(logging.INFO)
    observed = observe(correlated_app())
    observed.client().get("/work")
    access = observed.events("flask.request_finished")[0]
    records = {r.getMessage(): r for r in caplog.records if r.name in ("correlated", "shop.payments")}
    assert set(records) == {"stock low for teapot", "card charged"}
    for record in records.values():
        assert record.trace_id == access["trace_id"] and record.span_id == access["span_id"]
        assert getattr(record, "request.id") == access["request.id"]


STDLIB_CHILD = """
import logging
from flask import Flask
from flask_sigobs import SigObs
app = Flask("stdlib_app")
@app.route("/")
def index():
    app.logger.warning("stock low for %s", "teapot")
    logging.getLogger("shop.payments").info("card charged")
    return "ok"
SigObs(app)
app.test_client().get("/")
"""


def test_stdlib_and_app_logger_lines_become_json_when_logging_is_not_configured(tmp_path):
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SIGOBS_"))}
    result = subprocess.run([sys.executable, "-c", STDLIB_CHILD], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # Flask's default handler no longer prints a second, plain copy
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_event = {line["event"]: line for line in lines}
    access = by_event["flask.request_finished"]
    for message, level, logger in (("stock low for teapot", "warning", "stdlib_app"),
                                   ("card charged", "info", "shop.payments")):
        line = by_event[message]
        assert (line["level"], line["logger"]) == (level, logger)
        assert line["trace_id"] == access["trace_id"] and line["request.id"] == access["request.id"]


def test_async_views_are_observed_and_correlated(observe):
    observed = observe(correlated_app())
    assert observed.client().get("/async").data == b"async done"
    access = observed.events("flask.request_finished")[0]
    inside = observed.events("inside_async")[0]
    assert access["http.route"] == "/async" and access["http.response.status_code"] == 200
    assert inside["trace_id"] == access["trace_id"] and inside["request.id"] == access["request.id"]


def test_streaming_responses_end_their_span_when_the_stream_ends(observe):
    observed = observe(correlated_app(), SIGOBS_SIGNALS="+request_tearing_down", SIGOBS_LOG_LEVEL="debug")
    with observed.serve() as base:
        status, _, body = http(f"{base}/stream")
    assert (status, body) == (200, b"ab")
    access = observed.events("flask.request_finished")[0]
    inside = observed.events("inside_stream")[0]
    assert inside["trace_id"] == access["trace_id"] and inside["request.id"] == access["request.id"]
    (span,) = observed.server_spans()
    names = [event.name for event in span.events]
    assert names[-1] == "flask.request_tearing_down"  # fired after the body was streamed
    assert access.get("http.response.body.size") is None  # unknown for a stream


def test_a_request_context_kept_past_the_call_keeps_the_span_open_until_the_body_is_closed(observe):
    """A body can keep its request context past the WSGI call (``stream_with_context`` does on Flask
    3.0): the teardown signals then come when the server closes the body, and the span waits for
    them. The view keeps its context the way such a body does: pushed once more, popped on close."""
    app = correlated_app()

    @app.route("/kept")
    def kept():
        context = flask.globals.request_ctx._get_current_object()
        context.push()
        response = Response("kept")
        response.call_on_close(context.pop)
        return response

    observed = observe(app, SIGOBS_SIGNALS="+request_tearing_down", SIGOBS_LOG_LEVEL="debug")
    response = observed.client().get("/kept")
    assert response.get_data() == b"kept"
    assert observed.server_spans() == [], "the context is kept: the span is still open"
    assert observed.events("flask.request_tearing_down") == []
    response.close()
    (span,) = observed.server_spans()
    assert [event.name for event in span.events][-1] == "flask.request_tearing_down"
    observed.client().get("/work")  # a context not kept: the span ends when the call returns
    assert len(observed.server_spans()) == 2


def test_a_middleware_that_copies_the_environ_does_not_keep_the_span_open(observe):
    """A WSGI middleware between flask-sigobs and Flask may hand Flask a copy of the environ: the
    request's teardown is then not seen in ours, and the span ends when the call returns, as it
    does without the middleware (the test client does not close the body here)."""
    app = correlated_app()
    flask_wsgi = app.wsgi_app
    app.wsgi_app = lambda environ, start_response: flask_wsgi(dict(environ), start_response)
    observed = observe(app)
    assert observed.client().get("/work").status_code == 200
    (span,) = observed.server_spans()
    assert span.name == "GET /work"


def test_threaded_server_keeps_concurrent_requests_apart(observe):
    observed = observe(correlated_app())
    errors: list[BaseException] = []
    with observed.serve() as base:
        def client(n: int) -> None:
            try:
                for i in range(20):
                    http(f"{base}/work", headers={"X-Request-ID": f"t{n}-{i}"})
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not errors
    access = observed.events("flask.request_finished")
    assert len(access) == 120
    assert len({line["trace_id"] for line in access}) == 120
    spans = {format(s.context.trace_id, "032x"): s for s in observed.server_spans()}
    by_request = {}
    for line in observed.lines():
        by_request.setdefault(line["request.id"], set()).add(line["trace_id"])
    assert all(len(trace_ids) == 1 for trace_ids in by_request.values())
    for line in access:
        span = spans[line["trace_id"]]
        assert format(span.context.span_id, "016x") == line["span_id"]
        assert line["request.id"] in {e.attributes.get("request.id") for e in span.events}
