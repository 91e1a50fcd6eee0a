"""Two things real apps showed (issue 24, defects 1 and 2).

- A credential in a URL path (an invite or password-reset link: ``/reset/<token>``) is replaced
  in ``url.path`` wherever it is written, the log line, the span events, the span's own
  attribute (made by either span source, or by an app's own instrumentation), the span's name,
  the server's request line and an exception that echoes it, while the route and the other
  segments stay readable.
- An HTTP error raised on purpose (a 401 from a Flask-RESTful or flask-restx ``Resource``) is
  not an exception event nor an ERROR span, even though those frameworks send
  ``got_request_exception`` for it; a real exception in the same framework still is.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from typing import Any
from urllib.parse import unquote

import pytest
from flask import Blueprint, Flask, Response, abort, current_app, g, got_request_exception
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from werkzeug.exceptions import Forbidden, HTTPException, InternalServerError, Unauthorized
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from werkzeug.routing import BaseConverter, Map, Rule

from flask_sigobs.redaction import REDACTED, Redactor

from .extras import flask_instrumentor
from .conftest import http
from .servers import REPO, free_port, http_get, json_lines, server_env

TOKEN = "Zq-invite-7f3a9c-qZ"


class Slug(BaseConverter):
    """An app's own converter: one segment of lower-case letters."""

    regex = "[a-z]+"


def invite_app(name: str = "budget") -> Flask:
    """A shared budget app: projects joined by an invite link, passwords reset by a mailed link."""
    app = Flask(name)
    app.url_map.converters["slug"] = Slug

    @app.route("/projects/<project_id>/join/<string:token>")
    def join(project_id: str, token: str):
        return {"project": project_id}

    @app.route("/reset/<token>/", methods=["GET", "POST"])
    def reset(token: str):
        return "new password, please"

    @app.route("/expired/<token>")
    def expired(token: str):
        raise ValueError(f"invite {token} has expired")

    @app.route("/files/<path:secret_path>")
    def files(secret_path: str):
        return "file"

    @app.route("/shared/<path:folder>/x/<int:token_id>")
    def shared(folder: str, token_id: int):
        return "shared"

    @app.route("/download/<api_key>.zip")
    def download(api_key: str):
        return "zip"

    @app.route("/team/<slug:team>/<slug:password>")
    def team(team: str, password: str):
        return "team"

    @app.route("/loose/<token>", strict_slashes=False)
    def loose(token: str):
        return "loose"

    @app.route("/items/<int:item_id>")
    def item(item_id: int):
        return {"id": item_id}

    @app.route("/invites/<invite_code>")
    def invite(invite_code: str):
        return "welcome"

    # A blueprint whose url_value_preprocessor takes the token out of view_args, as apps do for
    # a value every view of the blueprint needs.
    board = Blueprint("board", __name__, url_prefix="/boards/<board_token>")

    @board.url_value_preprocessor
    def pull_token(endpoint: str | None, values: dict[str, Any] | None) -> None:
        g.board_token = (values or {}).pop("board_token", None)

    @board.route("/cards/<int:card>")
    def card(card: int):
        return {"card": card, "board": bool(g.board_token)}

    app.register_blueprint(board)
    return app


def server_span(observed: Any) -> Any:
    (span,) = [span for span in observed.spans() if span.kind == SpanKind.SERVER]
    return span


def everything_written(observed: Any) -> str:
    """Every log byte and every text of every exported span."""
    texts = [observed.raw_log().decode()]
    for span in observed.spans():
        texts += [span.name, span.status.description or "", span.to_json()]
    return "\n".join(texts)


def test_a_token_in_the_path_is_replaced_and_the_rest_of_the_path_kept(observe):
    observed = observe(invite_app(), SIGOBS_SIGNALS="all", SIGOBS_LOG_LEVEL="debug")
    with observed.serve() as base:
        status, _, _ = http(f"{base}/projects/kitchen/join/{TOKEN}?page=2")
    assert status == 200
    (line,) = observed.events("flask.request_finished")
    assert line["url.path"] == f"/projects/kitchen/join/{REDACTED}"
    assert line["http.route"] == "/projects/<project_id>/join/<string:token>"
    assert line["url.query"] == "page=2"
    (started,) = observed.events("flask.request_started")
    assert started["url.path"] == line["url.path"]
    span = server_span(observed)
    assert span.attributes["url.path"] == f"/projects/kitchen/join/{REDACTED}"
    assert span.name == "GET /projects/<project_id>/join/<string:token>"
    assert TOKEN not in everything_written(observed)


SHAPES = [
    # (request path as sent, method, status, url.path written)
    (f"/reset/{TOKEN}/", "GET", 200, f"/reset/{REDACTED}/"),  # a trailing slash
    (f"/reset/{TOKEN}", "GET", 308, f"/reset/{REDACTED}"),  # redirected to the slash: no rule kept
    (f"/reset/{TOKEN}/", "PUT", 405, f"/reset/{REDACTED}/"),  # the path matched, the method not
    (f"/files/{TOKEN}/a/b.txt", "GET", 200, f"/files/{REDACTED}"),  # path: spans several slashes
    (f"/files/{TOKEN}%2Fx", "GET", 200, f"/files/{REDACTED}"),  # percent-encoded
    ("/shared/photos/2024/x/98765", "GET", 200, f"/shared/photos/2024/x/{REDACTED}"),
    (f"/download/{TOKEN}.zip", "GET", 200, f"/download/{REDACTED}"),  # a segment with static text
    ("/team/kitchen/hunterhunter", "GET", 200, f"/team/kitchen/{REDACTED}"),  # the app's own converter
    (f"/loose/{TOKEN}/", "GET", 200, f"/loose/{REDACTED}/"),  # strict_slashes=False
    (f"/boards/{TOKEN}/cards/3", "GET", 200, f"/boards/{REDACTED}/cards/3"),  # view_args popped
    (f"/invites/{TOKEN}", "GET", 200, f"/invites/{REDACTED}"),  # SIGOBS_REDACT_KEYS=invite_code
    ("/items/42", "GET", 200, "/items/42"),  # nothing sensitive: as it was
    (f"/nowhere/{TOKEN}", "GET", 404, f"/nowhere/{TOKEN}"),  # no route: no variable names to go by
]


@pytest.mark.parametrize("sent, method, status, written", SHAPES, ids=[s[0].split("/")[1] + "-" + s[1]
                                                                        for s in SHAPES])
def test_each_shape_of_path_keeps_what_is_not_secret(observe, sent, method, status, written):
    observed = observe(invite_app(), SIGOBS_REDACT_KEYS="invite_code")
    with observed.serve() as base:
        got, _, _ = http_get(base + sent, method=method)
    assert got == status
    (line,) = observed.events("flask.request_finished")
    assert line["url.path"] == written
    span = server_span(observed)
    assert span.attributes["url.path"] == written
    if status != 404:
        assert TOKEN not in everything_written(observed) and "hunterhunter" not in everything_written(observed)


RULES = ["/projects/<project_id>/join/<string:token>", "/files/<path:secret_path>",
         "/shared/<path:folder>/x/<int:token_id>", "/w/<path:password>/edit/<name>/", "/download/<api_key>.zip",
         "/a/<x>-<token>", "/teams/<slug:team>/<slug:session>", "/u/<uuid:credential>/<int:n>"]
segment_text = st.text(st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), min_size=1, max_size=12)
path_text = st.lists(segment_text, min_size=1, max_size=4).map("/".join)
VALUES = {"string": segment_text, "default": segment_text, "path": path_text, "int": st.integers(0, 10**9),
          "slug": st.from_regex(r"[a-z]{1,10}", fullmatch=True), "uuid": st.uuids()}

MARKS = {"int": 424242424242, "slug": "markedsecret", "uuid": uuid.UUID(int=0x4242424242)}  # no value looks so


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data(), index=st.integers(0, len(RULES) - 1))
def test_any_value_of_any_variable_is_where_the_plan_says(data, index):
    """For paths werkzeug itself builds and matches: exactly the segments holding a sensitive
    variable are replaced (a stretch a ``path:`` value spans, as one), every other one is kept."""
    url_map = Map([Rule(rule, endpoint=str(number)) for number, rule in enumerate(RULES)], converters={"slug": Slug})
    adapter = url_map.bind("example.test")
    rule = next(r for r in url_map.iter_rules() if r.endpoint == str(index))
    redactor = Redactor()
    values, marked = {}, {}
    for converter, name in re.findall(r"<(?:(\w+):)?(\w+)>", rule.rule):
        values[name] = data.draw(VALUES[converter or "default"], label=name)
        marked[name] = MARKS.get(converter, "MARKEDSECRET") if redactor.is_sensitive(name) else values[name]
    path = unquote(adapter.build(str(index), values))
    try:
        matched = adapter.match(path, return_rule=True)[0]
    except HTTPException:  # a value werkzeug builds but does not match back ("0\n" for [^/].*?)
        matched = None
    assume(matched is rule)
    expected = "/".join(REDACTED if any(str(mark) in part for mark in (*MARKS.values(), "MARKEDSECRET")) else part
                        for part in unquote(adapter.build(str(index), marked)).split("/"))
    assert redactor.paths.plan(rule).redact(path) == expected


def test_an_exception_that_echoes_the_token_is_redacted(observe):
    observed = observe(invite_app(), SIGOBS_SIGNALS="all")
    with observed.serve() as base:
        status, _, _ = http(f"{base}/expired/{TOKEN}")
    assert status == 500
    (error,) = observed.events("flask.got_request_exception")
    assert error["url.path"] == f"/expired/{REDACTED}"
    assert error["exception.message"] == f"invite {REDACTED} has expired"
    span = server_span(observed)
    assert span.status.status_code is StatusCode.ERROR
    assert TOKEN not in everything_written(observed)


def test_the_span_of_an_app_instrumented_already_is_redacted_too(observe):
    FlaskInstrumentor = flask_instrumentor()  # skips, saying why, without the [otel] extra
    app = invite_app("instrumented")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    FlaskInstrumentor.instrument_app(app, tracer_provider=provider)
    try:
        observed = observe(app)
        with observed.serve() as base:
            assert http(f"{base}/projects/kitchen/join/{TOKEN}")[0] == 200
            assert http_get(f"{base}/reset/{TOKEN}/", method="PUT")[0] == 405
    finally:
        FlaskInstrumentor.uninstrument_app(app)
    joined, refused = sorted((s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER),
                             key=lambda s: s.start_time)
    assert joined.attributes["url.path"] == f"/projects/kitchen/join/{REDACTED}"
    # No route kept for a 405: the instrumentation names the span by its path.
    assert refused.attributes["url.path"] == f"/reset/{REDACTED}/" and refused.name == f"PUT /reset/{REDACTED}/"
    assert TOKEN not in "\n".join(s.to_json() for s in exporter.get_finished_spans())


@pytest.mark.otel  # SIGOBS_SPAN_SOURCE=otel: skipped, saying why, without the [otel] extra
def test_the_old_conventions_request_target_is_redacted(tmp_path):
    """``OTEL_SEMCONV_STABILITY_OPT_IN=http/dup`` adds ``http.target`` (path and query as sent).
    The conventions are read once per process: in a process of its own."""
    program = textwrap.dedent(f"""
        import json, threading
        from flask import Flask
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from werkzeug.serving import make_server
        from flask_sigobs import SigObs
        from tests.servers import http_get
        app = Flask("old_conventions")
        exporter = InMemorySpanExporter()
        app.config.update(SIGOBS_SPAN_SOURCE="otel", SIGOBS_SPAN_EXPORTER=exporter,
                          SIGOBS_LOG_FILE={str(tmp_path / "app.log")!r})
        app.route("/projects/<project_id>/join/<token>")(lambda project_id, token: "ok")
        sigobs = SigObs(app)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        status, _, _ = http_get(f"http://127.0.0.1:{{server.server_port}}/projects/kitchen/join/{TOKEN}?token={TOKEN}")
        server.shutdown()
        sigobs.flush(app)
        (span,) = exporter.get_finished_spans()
        print(json.dumps({{"status": status, "attributes": dict(span.attributes), "span": span.to_json()}}))
    """)
    env = server_env(OTEL_SEMCONV_STABILITY_OPT_IN="http/dup")
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["status"] == 200
    attributes = result["attributes"]
    assert attributes["http.target"] == f"/projects/kitchen/join/{REDACTED}?token={REDACTED}"
    assert attributes["url.path"] == f"/projects/kitchen/join/{REDACTED}"
    assert TOKEN not in result["span"]


def test_the_dev_servers_request_line_and_flasks_error_line_have_no_token(tmp_path):
    """werkzeug's own request line (``"GET /reset/... HTTP/1.1" 200``) and Flask's ``Exception on
    /expired/... [GET]`` are captured into the log."""
    log = tmp_path / "app.log"
    port = free_port()
    program = textwrap.dedent(f"""
        from flask import Flask
        from flask_sigobs import SigObs
        app = Flask("dev")
        app.config.update(SIGOBS_LOG_FILE={str(log)!r})
        app.route("/reset/<token>/")(lambda token: "ok")

        @app.route("/expired/<token>")
        def expired(token):
            raise ValueError(f"invite {{token}} has expired")

        SigObs(app)
        app.run(host="127.0.0.1", port={port})
    """)
    process = subprocess.Popen([sys.executable, "-c", program], cwd=REPO, env=server_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, _, _ = http_get(f"http://127.0.0.1:{port}/reset/{TOKEN}/", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "the dev server did not start"
                time.sleep(0.1)
        failed, _, _ = http_get(f"http://127.0.0.1:{port}/expired/{TOKEN}", timeout=5)
        while log_text(log).count(" HTTP/1.1") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    assert (status, failed) == (200, 500)
    lines = json_lines(log.read_bytes())
    request_lines = [line["event"] for line in lines if line.get("logger") == "werkzeug" and "HTTP/1.1" in line["event"]]
    assert len(request_lines) == 2 and f"GET /reset/{REDACTED}/ HTTP/1.1" in request_lines[0]
    assert f"GET /expired/{REDACTED} HTTP/1.1" in request_lines[1]
    assert [line["event"] for line in lines if line.get("logger") == "dev"] == [f"Exception on /expired/{REDACTED} [GET]"]
    assert TOKEN.encode() not in log.read_bytes()


def log_text(log: Any) -> str:
    return log.read_text() if log.exists() else ""


# -- HTTP errors raised on purpose ----------------------------------------------------------------

def assert_not_an_error(observed: Any, status: int) -> None:
    lines = observed.lines()
    assert [line["event"] for line in lines if line["event"].startswith("flask.")] == ["flask.request_finished"]
    assert lines[-1]["http.response.status_code"] == status and lines[-1]["level"] == "info"
    assert not [line for line in lines if line["level"] == "error" or "exception.stacktrace" in line]
    span = server_span(observed)
    assert span.status.status_code is StatusCode.UNSET
    assert [event.name for event in span.events if event.name in ("exception", "flask.got_request_exception")] == []


def assert_an_error(observed: Any, exception_type: str) -> None:
    (error,) = observed.events("flask.got_request_exception")
    assert error["exception.type"] == exception_type and error["level"] == "error"
    assert "exception.stacktrace" in error
    span = server_span(observed)
    assert span.status.status_code is StatusCode.ERROR
    assert "flask.got_request_exception" in [event.name for event in span.events]


def restful_app() -> Flask:
    from flask_restful import Api, Resource
    from flask_restful import abort as restful_abort

    app = Flask("restful")
    api = Api(app)

    class Account(Resource):
        def get(self):
            abort(401)

    class Admin(Resource):
        def get(self):
            restful_abort(403, message="admins only")

    class Missing(Resource):
        def get(self):
            abort(404)

    class Broken(Resource):
        def get(self):
            raise RuntimeError("the ledger is corrupt")

    class Down(Resource):
        def get(self):
            abort(503)

    for resource, path in ((Account, "/account"), (Admin, "/admin"), (Missing, "/missing"), (Broken, "/broken"),
                           (Down, "/down")):
        api.add_resource(resource, path)
    return app


def restx_app() -> Flask:
    from flask_restx import Api, Resource

    app = Flask("restx")
    api = Api(app)

    @api.route("/account")
    class Account(Resource):
        def get(self):
            api.abort(401, "log in first")

    @api.route("/admin")
    class Admin(Resource):
        def get(self):
            raise Forbidden("admins only")

    @api.route("/missing")
    class Missing(Resource):
        def get(self):
            abort(404)

    @api.route("/broken")
    class Broken(Resource):
        def get(self):
            raise RuntimeError("the ledger is corrupt")

    @api.route("/down")
    class Down(Resource):
        def get(self):
            abort(503)

    return app


@pytest.mark.parametrize("make_app", [restful_app, restx_app], ids=["flask-restful", "flask-restx"])
@pytest.mark.parametrize("path, status", [("/account", 401), ("/admin", 403), ("/missing", 404)])
def test_a_frameworks_http_error_is_not_an_exception(observe, make_app, path, status):
    observed = observe(make_app())
    with observed.serve() as base:
        assert http(base + path)[0] == status
    assert_not_an_error(observed, status)


@pytest.mark.parametrize("make_app", [restful_app, restx_app], ids=["flask-restful", "flask-restx"])
@pytest.mark.parametrize("path, exception_type", [("/broken", "RuntimeError"),
                                                  ("/down", "werkzeug.exceptions.ServiceUnavailable")])
def test_a_real_exception_in_the_same_framework_still_is(observe, make_app, path, exception_type):
    observed = observe(make_app())
    with observed.serve() as base:
        assert http(base + path)[0] == (500 if path == "/broken" else 503)
    assert_an_error(observed, exception_type)


def by_hand_app() -> Flask:
    """Plain Flask, and a view that reports the HTTP error it answers with, as those frameworks do."""
    app = Flask("by_hand")

    def report(exception: Exception) -> None:
        got_request_exception.send(current_app._get_current_object(), exception=exception)

    @app.route("/unauthorized")
    def unauthorized():
        report(Unauthorized())
        return "log in first", 401

    @app.route("/teapot")
    def teapot():
        error = Exception()
        try:
            abort(Response("short and stout", 418))  # an HTTPException with no code, only a response
        except Exception as raised:
            error = raised
        report(error)
        return "short and stout", 418

    @app.route("/failed")
    def failed():
        report(InternalServerError("the ledger is corrupt"))
        return "sorry", 500

    return app


@pytest.mark.parametrize("path, status", [("/unauthorized", 401), ("/teapot", 418)])
def test_an_http_error_sent_by_hand_is_not_an_exception(observe, path, status):
    observed = observe(by_hand_app())
    with observed.serve() as base:
        assert http(base + path)[0] == status
    assert_not_an_error(observed, status)


def test_a_server_error_sent_by_hand_still_is(observe):
    observed = observe(by_hand_app())
    with observed.serve() as base:
        assert http(base + "/failed")[0] == 500
    assert_an_error(observed, "werkzeug.exceptions.InternalServerError")
