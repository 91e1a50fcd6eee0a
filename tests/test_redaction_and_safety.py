"""Secrets never leave the process; nothing flask-sigobs does can break a request."""

from __future__ import annotations

import logging

import pytest
from flask import Flask, current_app, request
from opentelemetry.sdk.trace.export import SpanExportResult

from flask_sigobs import auth
from flask_sigobs.redaction import REDACTED, Redactor

from .conftest import http

SECRETS = ["pw-Sup3r-s3cret", "tok-abcdef-123456", "Bearer eyJhbGciOi.secret.sig", "sessid-998877",
           "csrf-4455", "apikey-7788"]


def login_app() -> Flask:
    app = Flask("redacting")

    @app.route("/login", methods=["POST"])
    def login():
        form = request.form
        auth.login_failed.send(current_app._get_current_object(), user=form["username"],
                               password=form["password"],
                               details={"nested": [{"api_key": "apikey-7788", "ok": "visible"}]},
                               headers={"Authorization": request.headers.get("Authorization"),
                                        "X-CSRFToken": "csrf-4455"})
        return "no", 401

    return app


def test_no_secret_reaches_a_log_byte_or_a_span(observe):
    observed = observe(login_app(), SIGOBS_LOG_LEVEL="debug", SIGOBS_SIGNALS="all")
    with observed.serve() as base:
        status, _, _ = http(
            f"{base}/login?access_token=tok-abcdef-123456&page=2", method="POST",
            data=b"username=alice&password=pw-Sup3r-s3cret",
            headers={"Authorization": "Bearer eyJhbGciOi.secret.sig", "Cookie": "session=sessid-998877",
                     "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 401
    raw = observed.raw_log().decode()
    spans = "".join(span.to_json() for span in observed.spans())
    for secret in SECRETS:
        assert secret not in raw, secret
        assert secret not in spans, secret
    line = observed.events("auth.login_failed")[0]
    assert line["password"] == REDACTED
    assert line["details"] == {"nested": [{"api_key": REDACTED, "ok": "visible"}]}
    assert line["headers"] == {"Authorization": REDACTED, "X-CSRFToken": REDACTED}
    access = observed.events("flask.request_finished")[0]
    assert access["url.query"] == f"access_token={REDACTED}&page=2"
    (span,) = observed.server_spans()
    assert span.attributes["url.query"] == f"access_token={REDACTED}&page=2"


def test_configured_keys_are_redacted_too(observe):
    app = Flask("extra_keys")

    @app.route("/")
    def index():
        auth.login_succeeded.send(current_app._get_current_object(), user="u", pin_code="pin-4321-xyz", otp="otp-998-abc")
        return "ok"

    observed = observe(app, SIGOBS_REDACT_KEYS="pin_code, OTP")
    observed.client().get("/?otp=otp-998-abc")
    line = observed.events("auth.login_succeeded")[0]
    assert line["pin_code"] == REDACTED and line["otp"] == REDACTED
    assert b"pin-4321-xyz" not in observed.raw_log() and b"otp-998-abc" not in observed.raw_log()


def test_the_redactor_matches_keys_case_insensitively_and_by_part():
    redactor = Redactor()
    for key in ("password", "PASSWORD", "new_password", "passwd", "client_secret", "access_token",
                "X-API-Key", "api_key", "Authorization", "Cookie", "Set-Cookie", "session_id",
                "csrf_token", "X-CSRFToken"):
        assert redactor.is_sensitive(key), key
    for key in ("username", "page", "colour", "reason"):
        assert not redactor.is_sensitive(key), key
    assert redactor.query("a=1&Password=x&b=2&api%5Fkey=y") == f"a=1&Password={REDACTED}&b=2&api%5Fkey={REDACTED}"


class Hostile:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


def test_values_that_cannot_be_printed_or_are_huge_are_still_written_bounded(observe):
    recursive: list = [1]
    recursive.append(recursive)
    app = Flask("hostile")

    @app.route("/")
    def index():
        auth.login_failed.send(current_app._get_current_object(), user=Hostile(), weird=Hostile(),
                               loop=recursive, huge="x" * 10_000_000, raw=b"\xff\xfe\x00bad",
                               big_int=2**80, mapping={i: i for i in range(500)})
        return "still fine"

    observed = observe(app)
    response = observed.client().get("/")
    assert response.status_code == 200 and response.data == b"still fine"
    (line,) = observed.events("auth.login_failed")
    assert line["enduser.id"] == "<unprintable Hostile>" and line["weird"] == "<unprintable Hostile>"
    assert line["huge"].startswith("x" * 1024) and line["huge"].endswith("more chars]")
    assert line["raw"] == "\\xff\\xfe\x00bad" and line["big_int"] == str(2**80)
    assert b"\x00" not in observed.raw_log()  # JSON escapes it: no raw control byte in the log
    assert len(line["mapping"]) == 51
    assert max(len(raw) for raw in observed.raw_log().splitlines()) < 20_000
    span_event = next(e for e in observed.server_spans()[0].events if e.name == "auth.login_failed")
    assert span_event.attributes["weird"] == "<unprintable Hostile>"


def test_a_failing_sink_never_breaks_the_request_and_is_reported_once(observe, caplog):
    from flask_sigobs import errors

    app = Flask("failing")
    app.route("/")(lambda: "ok")
    observed = observe(app, SIGOBS_LOG_LEVEL="debug")  # both request events are lines, not just span events
    runtime = observed.sigobs.runtime(app)

    def explode(*args, **kwargs):
        raise OSError("disk on fire")

    runtime.log_sink.emit = explode
    errors.failures.clear()
    with caplog.at_level(logging.WARNING, logger="flask_sigobs"):
        for _ in range(5):
            assert observed.client().get("/").status_code == 200
    reports = [r for r in caplog.records if r.name == "flask_sigobs" and "disk on fire" in r.getMessage()]
    assert len(reports) == 1
    # counted every time (two events a request: request_started, request_finished), said once
    assert sum(count for key, count in errors.failures.items() if key[0] == "log") == 10
    # the span side still worked
    assert all("flask.request_finished" in [e.name for e in s.events] for s in observed.server_spans())


@pytest.mark.parametrize("builder", ["request_attributes", "finished_attributes"])
def test_a_failing_request_receiver_never_breaks_the_request_and_is_reported_once(observe, caplog,
                                                                                 monkeypatch, builder):
    """The two receivers every request runs guard themselves (they are connected without
    ``guarded``): what fails inside either stays inside it."""
    from flask_sigobs import errors, events

    app = Flask("failing_receiver")
    app.route("/")(lambda: "ok")
    observed = observe(app)

    def explode(*args, **kwargs):
        raise RuntimeError("builder on fire")

    monkeypatch.setattr(events, builder, explode)
    errors.failures.clear()
    with caplog.at_level(logging.WARNING, logger="flask_sigobs"):
        for _ in range(3):
            response = observed.client().get("/")
            assert (response.status_code, response.data) == (200, b"ok")
    reports = [r.getMessage() for r in caplog.records if r.name == "flask_sigobs" and "builder on fire" in r.getMessage()]
    # request_finished builds the request's attributes too when request_started could not
    failed = ["request_started", "request_finished"] if builder == "request_attributes" else ["request_finished"]
    assert len(reports) == len(failed), reports
    assert all(f"receiver for flask.{signal} failed" in report for signal, report in zip(failed, reports)), reports


def test_a_full_disk_is_not_the_requests_problem(observe, caplog):
    app = Flask("full_disk")
    app.route("/")(lambda: "ok")
    observed = observe(app, SIGOBS_LOG_FILE="/dev/full")
    with caplog.at_level(logging.WARNING, logger="flask_sigobs"):
        for _ in range(3):
            assert observed.client().get("/").status_code == 200
    assert len([r for r in caplog.records if "cannot write its log" in r.getMessage()]) <= 1


class BrokenExporter:
    def export(self, spans):
        raise ConnectionError("collector is down")

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30000):
        return True


def test_an_exporter_that_fails_does_not_fail_requests(observe):
    app = Flask("broken_exporter")
    app.route("/")(lambda: "ok")
    observed = observe(app, SIGOBS_SPAN_EXPORTER=BrokenExporter())
    for _ in range(20):
        assert observed.client().get("/").status_code == 200
    observed.sigobs.runtime(app).tracer_provider.force_flush()
    assert len(observed.events("flask.request_finished")) == 20
    assert SpanExportResult  # the SDK's contract the exporter above breaks on purpose


def test_console_lines_show_control_characters_escaped(observe):
    app = Flask("console_app")

    @app.route("/")
    def index():
        raise RuntimeError("boom\x1b]0;title\x07")

    observed = observe(app, SIGOBS_LOG_FORMAT="console")
    observed.client().get("/", headers={"User-Agent": "x\x1b[2J\u202ey"})
    raw = observed.raw_log().decode()
    assert "user_agent.original=x\\x1b[2J\\u202ey" in raw
    assert "boom\\x1b]0;title\\x07" in raw
    assert "\x1b" not in raw and "\u202e" not in raw and "\x07" not in raw
    # Quoted on one line (newer structlog's console renderer) or a block keeping its line breaks (24.1's).
    assert "exception.stacktrace='Traceback (most recent call last):\\n  File" in raw \
        or "exception.stacktrace=Traceback (most recent call last):\n  File" in raw
