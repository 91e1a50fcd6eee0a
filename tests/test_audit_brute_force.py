"""Brute force across workers: failures counted from the shared database, ``auth.login_fail_max``
raised once per window (a warning line, a span event in the attack's trace, a row), and the app's
check answering 429 with Retry-After in every worker within a flush interval."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flask_sigobs import audit
from flask_sigobs.audit.bruteforce import parse_threshold

from .audit_support import login_app
from .conftest import http
from .test_audit_trail import post, rows, serve


@pytest.fixture
def workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two apps sharing one database and journal directory: two workers, each with its own writer."""
    for key in ("SIGOBS_AUDIT_URL", "SIGOBS_AUDIT_KEY"):
        monkeypatch.delenv(key, raising=False)
    url = "sqlite:///" + str(tmp_path / "audit.db")
    made = []
    for i in range(2):
        exporter = InMemorySpanExporter()
        app, sigobs = login_app(f"worker_{i}", SIGOBS_AUDIT_URL=url, SIGOBS_AUDIT_JOURNAL=str(tmp_path / "journal"),
                                SIGOBS_AUDIT_MAX_FAILURES="10/5m", SIGOBS_LOG_FILE=str(tmp_path / f"log{i}.jsonl"),
                                SIGOBS_SPAN_EXPORTER=exporter, SIGOBS_SPAN_SOURCE="signals")
        server = serve(app)
        made.append((f"http://127.0.0.1:{server.server_port}", app, sigobs, exporter, tmp_path / f"log{i}.jsonl", server))
    yield url, made
    for _, app, sigobs, _, _, server in made:
        server.shutdown()
        sigobs.runtime(app).audit.close()


def test_failures_in_two_workers_add_up_to_one_alarm_and_a_lockout_in_both(workers) -> None:
    url, made = workers
    (base0, app0, sigobs0, spans0, log0, _), (base1, app1, sigobs1, spans1, log1, _) = made
    for i in range(5):
        assert post(base0, "/login", {"username": "alice", "password": f"guess{i}"}) == 401
        assert post(base1, "/login", {"username": "alice", "password": f"guess{i}"}) == 401
    time.sleep(0.4)  # a few flush intervals: both writers have written, one of them counted ten
    for base in (base0, base1):
        status, headers, _ = http(base + "/login", "POST", b"username=alice&password=wonderland",
                                  {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 429 and 290 <= int(headers["Retry-After"]) <= 300
    for i in range(5):  # more failures in the same window: no second alarm
        post(base0, "/login", {"username": "mallory", "password": "x"})
    with app0.app_context():
        lock = audit.check(user="alice", address="198.51.100.1")
        assert lock and lock.key == "user:alice" and lock.retry_after > 0
        assert not audit.check(user="bob", address="198.51.100.1")
    sigobs0.flush(app0)
    sigobs1.flush(app1)
    alarms = rows(url, "--event", "login_fail_max")
    assert len(alarms) == 1, alarms
    alarm = alarms[0]
    assert alarm["outcome"] == "failure" and alarm["reason"] == "too_many_failures"
    assert alarm["enduser.id"] == "alice" and alarm["client.address"] == "127.0.0.1"
    assert alarm["data"]["audit.lock.keys"] == ["user", "address", "user+address"]
    assert alarm["data"]["audit.failures"] == 10
    lines = [json.loads(line) for path in (log0, log1) for line in path.read_text().splitlines()]
    warned = [line for line in lines if line["event"] == "auth.login_fail_max"]
    assert len(warned) == 1 and warned[0]["level"] == "warning"
    assert warned[0]["trace_id"] == alarm["trace_id"]  # the alarm is in the trace of the tenth failure
    spans = [span for exporter in (spans0, spans1) for span in exporter.get_finished_spans()]
    alarm_spans = [span for span in spans if span.name == "auth.login_fail_max"]
    assert len(alarm_spans) == 1
    assert "%032x" % alarm_spans[0].context.trace_id == alarm["trace_id"]
    assert [event.name for event in alarm_spans[0].events] == ["auth.login_fail_max"]


def test_the_threshold_setting() -> None:
    assert parse_threshold("10/5m") == (10, 300.0)
    assert parse_threshold(3) == (3, 300.0)
    assert parse_threshold("20/1h") == (20, 3600.0)
    assert parse_threshold("0") == (0, 300.0)
    with pytest.raises(ValueError):
        parse_threshold("ten")


def test_an_unknown_name_is_locked_under_its_protected_form(workers) -> None:
    url, made = workers
    base, app, sigobs = made[0][0], made[0][1], made[0][2]
    for i in range(10):
        post(base, "/login", {"username": f"Guess{i}", "password": "x"}, **{"X-Forwarded-For": "x"})
    time.sleep(0.3)
    with app.app_context():
        assert audit.check(address="127.0.0.1").key == "address:127.0.0.1"
    names = {r["enduser.id"] for r in rows(url)}
    assert all(name.startswith("hash:") for name in names)
