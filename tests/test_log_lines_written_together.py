"""Log lines are gathered and written together: soon, whole, at once for errors, and on demand.

``SIGOBS_LOG_FLUSH_INTERVAL`` (0.1 s by default) bounds how long a line waits; a warning or
error line, and every authentication event, is written at once with what waits; ``SigObs.flush()`` writes everything now; on a pipe each write
stays within ``PIPE_BUF``, so lines of several processes never mix.
"""

from __future__ import annotations

import json
import os
import select
import threading
import time

import structlog
from flask import Flask
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flask_sigobs import SigObs, auth
from flask_sigobs.logsink import LineWriter, _chunks


def app_writing_to(path, **config) -> tuple[Flask, SigObs]:
    app = Flask("together")
    app.route("/")(lambda: "ok")

    @app.route("/fail")
    def fail() -> str:
        raise RuntimeError("boom")

    @app.route("/login")
    def login() -> str:
        auth.login_succeeded.send(app, user="alice")  # an authentication event at info
        return "welcome"

    @app.route("/warn")
    def warn() -> str:
        structlog.get_logger().warning("app.suspicious")  # the app's own line, at warning
        return "noted"

    app.config.update(SIGOBS_LOG_FILE=str(path), SIGOBS_SPAN_EXPORTER=InMemorySpanExporter(), **config)
    return app, SigObs(app)


def events_in(path) -> list[str]:
    return [json.loads(line)["event"] for line in path.read_bytes().splitlines()] if path.exists() else []


def test_lines_wait_at_most_the_flush_interval(tmp_path):
    log = tmp_path / "app.log"
    app, _ = app_writing_to(log)  # the default interval, 0.1 s
    client = app.test_client()
    for _ in range(5):
        assert client.get("/").status_code == 200
    sent = time.monotonic()
    while len(events_in(log)) < 5 and time.monotonic() - sent < 2:
        time.sleep(0.01)
    waited = time.monotonic() - sent
    assert events_in(log) == ["flask.request_finished"] * 5
    assert waited < 1.0, f"the lines took {waited:.2f} s to be written"


def test_an_error_line_is_written_at_once_with_what_waits(tmp_path):
    log = tmp_path / "app.log"
    app, _ = app_writing_to(log, SIGOBS_LOG_FLUSH_INTERVAL=60)  # only an error can write them
    client = app.test_client()
    assert client.get("/").status_code == 200
    assert events_in(log) == [], "lines were written one by one, not together"
    assert client.get("/fail").status_code == 500
    assert events_in(log)[:2] == ["flask.request_finished", "flask.got_request_exception"]


def test_warnings_and_authentication_events_are_written_at_once_with_what_waits(tmp_path):
    """Before the response is sent: a crash after it must not erase a failed login."""
    log = tmp_path / "app.log"
    app, _ = app_writing_to(log, SIGOBS_LOG_FLUSH_INTERVAL=60)
    client = app.test_client()
    assert client.get("/").status_code == 200
    assert events_in(log) == []
    assert client.get("/login").status_code == 200
    assert events_in(log) == ["flask.request_finished", "auth.login_succeeded"]  # its access line waits
    assert client.get("/warn").status_code == 200
    assert events_in(log) == ["flask.request_finished", "auth.login_succeeded", "flask.request_finished",
                              "app.suspicious"]


def test_authentication_events_are_written_at_once_in_the_console_format_too(tmp_path):
    log = tmp_path / "app.log"
    app, _ = app_writing_to(log, SIGOBS_LOG_FLUSH_INTERVAL=60, SIGOBS_LOG_FORMAT="console")
    client = app.test_client()
    assert client.get("/login").status_code == 200
    assert b"auth.login_succeeded" in log.read_bytes()


def test_flush_writes_the_waiting_lines_now(tmp_path):
    log = tmp_path / "app.log"
    app, sigobs = app_writing_to(log, SIGOBS_LOG_FLUSH_INTERVAL=60)
    app.test_client().get("/")
    assert events_in(log) == []
    sigobs.flush()
    assert events_in(log) == ["flask.request_finished"]


def test_flush_returns_only_once_lines_another_flush_took_are_written(tmp_path):
    """The flusher thread (or a request's error line) may have taken the waiting lines and be
    writing them when ``flush()`` is called: it must wait for that write, not return on an empty
    buffer before the lines are out (a test reading the log at once then misses them)."""
    log = tmp_path / "app.log"
    writer = LineWriter(str(log), flush_interval=60)
    write = writer._write
    writing = threading.Event()

    def slow_write(data: bytes) -> None:
        writing.set()
        time.sleep(0.5)
        write(data)

    writer._write = slow_write
    writer.write_line(b'{"event": "first"}')
    other = threading.Thread(target=writer.flush)
    other.start()
    assert writing.wait(5)
    writer.flush()  # nothing is left to take: the line is the other flush's
    assert log.read_bytes() == b'{"event": "first"}\n'
    other.join()


def test_zero_writes_each_line_at_once(tmp_path):
    log = tmp_path / "app.log"
    app, _ = app_writing_to(log, SIGOBS_LOG_FLUSH_INTERVAL=0)
    app.test_client().get("/")
    assert events_in(log) == ["flask.request_finished"]


def test_writes_to_a_pipe_hold_whole_lines_within_pipe_buf():
    lines = [b"x" * size for size in (10, 4000, 100, 5000, 3000, 1, 4094, 4095)]
    chunks = list(_chunks(bytearray(b"".join(line + b"\n" for line in lines)), select.PIPE_BUF))
    assert b"".join(chunks) == b"".join(line + b"\n" for line in lines), "every line, in order, whole"
    for chunk in chunks:
        assert chunk.endswith(b"\n")
        assert len(chunk) <= select.PIPE_BUF or chunk.count(b"\n") == 1, "only a long line goes alone"

    read, write = os.pipe()
    writer = LineWriter(f"/dev/fd/{write}", 0.05)  # a pipe, as standard output often is
    os.close(write)  # the writer has its own descriptor of the pipe
    assert writer._chunk == select.PIPE_BUF
    got = bytearray()

    def drain() -> None:
        while data := os.read(read, 65536):
            got.extend(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    for line in lines * 20:
        writer.write_line(line)
    writer.close()
    reader.join(5)
    os.close(read)
    assert bytes(got).split(b"\n")[:-1] == lines * 20
