"""Generated secrets, sent every way a request can carry one, never reach a log byte or an
exported span: form fields, query strings, headers, cookies, JSON bodies, nested keyword data of
auth and custom signals, and the app's own exceptions that echo them.

The in-process tests run the app under werkzeug's threaded server and read back every log byte
and every span the exporter was given, under both span sources. The gunicorn test goes further:
every byte of the log file (Flask's own error log line included) and every byte the OTLP
collector received.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any
from urllib.parse import quote, quote_plus

from blinker import Namespace
from flask import Flask, current_app, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_sigobs import auth
from flask_sigobs.redaction import REDACTED

from .reliability import figure
from .servers import OtlpSink, gunicorn, http_get, json_lines, server_env
from .extras import NO_OTEL

CHANNELS = ("form", "query", "bearer", "basic", "api_key_header", "cookie", "json", "path")
RAISES = ("message", "key_error", "detail_attribute", "chained", "os_error", "none")
if sys.version_info >= (3, 11):  # BaseException.add_note is 3.11's
    RAISES = (*RAISES[:-1], "notes", "none")
EXAMPLES = 40  # per span source

custom = Namespace().signal("test.custom_with_secrets")

# Secrets: a marker that appears nowhere else, around anything a password may be made of.
secrets = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e) | st.sampled_from("éß€😀 "),
                  min_size=4, max_size=40).map(lambda core: f"Zq{core}qZ")


class DetailError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__("request refused")
        self.detail = detail

    def __str__(self) -> str:
        return f"refused: {self.detail}"


def secret_from(channel: str) -> str:
    if channel == "form":
        return request.form["password"]
    if channel == "query":
        return request.args["access_token"]
    if channel == "bearer":
        return request.headers["Authorization"].split(" ", 1)[1]
    if channel == "basic":
        return request.authorization.password
    if channel == "api_key_header":
        return request.headers["X-Api-Key"]
    if channel == "cookie":
        return request.cookies["session_token"]
    if channel == "path":  # a reset link: /path/<raises>/<path:reset_token>
        return request.view_args["reset_token"]
    return request.get_json()["credentials"]["client_secret"]


def secrets_app() -> Flask:
    app = Flask("secrets")

    @app.route("/<channel>/<raises>", methods=["POST"])
    @app.route("/<channel>/<raises>/<path:reset_token>", methods=["POST"])
    def leak(channel: str, raises: str, reset_token: str | None = None):
        secret = secret_from(channel)
        sender = current_app._get_current_object()
        auth.login_failed.send(sender, user="alice", password=secret, details={"nested": [{"api_key": secret}]})
        custom.send(sender, credentials={"token": secret, "deeper": {"private_key": secret}})
        if raises == "message":
            raise ValueError(f"login failed: {secret!r} is not the password")
        if raises == "key_error":
            return {"x": 1}[secret]
        if raises == "detail_attribute":
            raise DetailError(f"bad credentials {secret}")
        if raises == "chained":
            try:
                raise LookupError(f"no user with token {secret}")
            except LookupError as error:
                raise RuntimeError("authentication backend failed") from error
        if raises == "os_error":
            raise FileNotFoundError(2, "No such key file", f"/keys/{secret}.pem")
        if raises == "notes":
            error = ValueError("bad login")
            error.add_note(f"the password was {secret}")
            raise error
        return "refused", 401

    return app


def send(base: str, channel: str, raises: str, secret: str) -> int:
    headers: dict[str, str] = {}
    body: bytes | None = b""
    path = f"{base}/{channel}/{raises}"
    if channel == "form":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = f"username=alice&password={quote_plus(secret)}".encode()
    elif channel == "query":
        path += f"?page=2&access_token={quote_plus(secret)}"
    elif channel == "bearer":
        headers["Authorization"] = f"Bearer {secret}"
    elif channel == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(f"alice:{secret}".encode()).decode()
    elif channel == "api_key_header":
        headers["X-Api-Key"] = secret
    elif channel == "cookie":
        headers["Cookie"] = f"theme=dark; session_token={quote(secret, safe='')}"
    elif channel == "path":
        path += "/" + quote(secret, safe="")
    else:
        headers["Content-Type"] = "application/json"
        body = json.dumps({"username": "alice", "credentials": {"client_secret": secret}}).encode()
    for key, value in headers.items():  # http.client sends headers as latin-1
        headers[key] = value.encode("utf-8").decode("latin-1")
    status, _, _ = http_get(path, headers=headers, method="POST", body=body)
    return status


def forms_of(secret: str) -> set[str]:
    """The secret as raw text and in each encoding a log or span could carry it."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1], repr(secret)[1:-1],
             quote(secret, safe=""), quote_plus(secret), base64.b64encode(secret.encode()).decode()}
    return {form for form in forms if form}


def span_texts(span: Any) -> list[str]:
    texts = [span.name, span.status.description or ""]
    texts += [str(v) for v in span.attributes.values()]
    for event in span.events:
        texts.append(event.name)
        texts += [str(v) for v in event.attributes.values()]
    return texts + [span.to_json()]


def test_generated_secrets_reach_no_log_byte_and_no_span(observe):
    observed = observe(secrets_app(), SIGOBS_LOG_LEVEL="debug", SIGOBS_SIGNALS="all")
    observed.sigobs.observe(custom)
    seen = {"examples": 0, "raised": 0}
    with observed.serve() as base:

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(secret=secrets, channel=st.sampled_from(CHANNELS), raises=st.sampled_from(RAISES))
        def check(secret: str, channel: str, raises: str) -> None:
            offset = len(observed.raw_log())
            observed.exporter.clear()
            status = send(base, channel, raises, secret)
            assert status == (401 if raises == "none" else 500)
            raw = observed.raw_log()[offset:]
            lines = json_lines(raw)
            spans = observed.spans()
            assert lines and spans, "the request was observed"
            text = raw.decode("utf-8")
            exported = "\n".join(t for span in spans for t in span_texts(span))
            for form in forms_of(secret):
                assert form not in text, (channel, raises, form)
                assert form not in exported, (channel, raises, form)
            failed = [line for line in lines if line["event"] == "auth.login_failed"]
            assert failed and failed[0]["password"] == REDACTED
            if raises != "none":
                (error,) = [line for line in lines if line["event"] == "flask.got_request_exception"]
                if raises in ("message", "detail_attribute", "os_error"):
                    assert REDACTED in error["exception.message"]
                assert REDACTED in error["exception.stacktrace"] or raises == "key_error"
                seen["raised"] += 1
            seen["examples"] += 1

        check()
    figure(f"secrets ({observed.app.config['SIGOBS_SPAN_SOURCE']} span source): {seen['examples']} generated "
           f"secrets over {len(CHANNELS)} channels, {seen['raised']} echoed by exceptions: 0 in log bytes or spans")


def test_secrets_never_leave_a_gunicorn_worker(tmp_path):
    """Under gunicorn every line in the file counts, Flask's own exception log included, and
    every byte the collector receives."""
    log = tmp_path / "app.log"
    secret_values = [f"Zq-gunicorn-{kind}-{index}-qZ" for index, kind in enumerate(("pw", "tok", "key"))]
    password, token, key = secret_values
    sources = ("signals",) if NO_OTEL else ("signals", "otel")  # otel: the [otel] extra's
    with OtlpSink() as sink:
        env = server_env(SIGOBS_LOG_FILE=str(log), SIGOBS_LOG_LEVEL="debug", OTEL_TRACES_EXPORTER="otlp",
                         OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=sink.endpoint)
        for source in sources:
            env["SIGOBS_SPAN_SOURCE"] = source
            with gunicorn(tmp_path, env, workers=2) as server:
                for _ in range(4):
                    status, _, _ = http_get(f"{server.base}/login?api_key={key}", method="POST",
                                            body=f"username=alice&password={password}".encode(),
                                            headers={"Authorization": f"Bearer {token}",
                                                     "Content-Type": "application/x-www-form-urlencoded"})
                    assert status == 500
                assert server.terminate() == 0
        exported = bytes(sink.raw) if sink.spans else b""
    raw = log.read_bytes()
    lines = json_lines(raw)
    flask_errors = [line for line in lines if line.get("logger") == "served" and "exception" in line]
    assert len(flask_errors) == 4 * len(sources), "Flask's own error log lines are in the file, and checked"
    spans = sink.server_spans()
    assert len(spans) == 4 * len(sources) and all("flask.got_request_exception" in dict(span.events) for span in spans)
    if "otel" in sources:
        assert sum("exception" in dict(span.events) for span in spans) >= 4  # the instrumentation's own
    for secret in secret_values:
        assert secret.encode() not in raw, secret
        assert secret.encode() not in exported, secret
    assert b"[REDACTED]" in exported and b"password [REDACTED]" in raw or b"password '[REDACTED]'" in raw
    figure(f"secrets under gunicorn: {len(raw)} log bytes ({len(lines)} lines, Flask's own error lines "
           f"included) and {len(exported)} exported OTLP bytes searched: 0 secrets")
