"""The audit trail when things go wrong: the database down or locked, the journal's disk full,
every process SIGKILLed under load, SIGTERM, hostile names and agents, secrets in every channel."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from flask_sigobs.redaction import REDACTED

from .audit_support import cli, login_app
from .conftest import http
from .servers import gunicorn, raw_request, server_env
from .test_audit_trail import post, rows, serve
from .test_secrets_never_exported import secrets


def count(url: str) -> int:
    path = url[len("sqlite:///"):]
    if not os.path.exists(path):
        return 0
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as connection:
        try:
            return connection.execute("SELECT COUNT(*) FROM sigobs_audit").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def wait_for(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def app_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for key in ("SIGOBS_AUDIT_URL", "SIGOBS_AUDIT_KEY"):
        monkeypatch.delenv(key, raising=False)
    from flask_sigobs import errors

    errors.failures.clear()  # "reported once" is once per process: what earlier tests reported is forgotten
    made = []

    def make(**config: Any):
        app, sigobs = login_app(f"faults_{len(made)}", SIGOBS_LOG_FILE=str(tmp_path / f"log{len(made)}.jsonl"),
                                SIGOBS_AUDIT_MAX_FAILURES=0, **config)
        server = serve(app)
        made.append((server, sigobs, app))
        return f"http://127.0.0.1:{server.server_port}", app, sigobs, sigobs.runtime(app).audit

    yield make
    for server, sigobs, app in made:
        server.shutdown()
        sigobs.runtime(app).audit.close()


def test_a_database_down_at_start_keeps_rows_in_the_journal_until_it_is_back(
        tmp_path: Path, app_of, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "db"
    blocker.write_text("a file where the database's directory should be")
    url = "sqlite:///" + str(blocker / "audit.db")
    base, app, sigobs, trail = app_of(SIGOBS_AUDIT_URL=url, SIGOBS_AUDIT_JOURNAL=str(tmp_path / "journal"))
    with caplog.at_level(logging.WARNING, "flask_sigobs"):
        started = time.monotonic()
        for i in range(20):
            assert post(base, "/login", {"username": "bob", "password": f"no{i}"}) == 401
        assert time.monotonic() - started < 10
        assert wait_for(lambda: trail.store_failures >= 3, 20)  # several flush intervals: each one fails
    said = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(said) == 1 and "rows wait in the journal" in said[0]  # once, not once per flush
    assert any("bytes of rows wait" in r.getMessage() for r in caplog.records)
    assert trail.backlog() > 0 and trail.journal.backlog > 0
    blocker.unlink()
    blocker.mkdir()
    assert wait_for(lambda: count(url) == 20, 10)
    assert [r["data"]["password"] if "password" in r.get("data", {}) else None for r in rows(url)] == [REDACTED] * 20
    assert trail.journal.backlog == 0
    assert cli("audit", "verify", "--db", url)[0] == 0


def test_a_locked_database_makes_the_writer_wait_not_the_request(tmp_path: Path, app_of) -> None:
    url = "sqlite:///" + str(tmp_path / "audit.db")
    base, app, sigobs, trail = app_of(SIGOBS_AUDIT_URL=url, SIGOBS_AUDIT_JOURNAL=str(tmp_path / "journal"))
    post(base, "/login", {"username": "bob", "password": "first"})
    assert wait_for(lambda: count(url) == 1)
    locker = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        slowest = 0.0
        for i in range(10):
            started = time.monotonic()
            assert post(base, "/login", {"username": "bob", "password": f"no{i}"}) == 401
            slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.5)
        assert slowest < 0.5  # the writer thread waits for the lock; the requests do not
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert wait_for(lambda: count(url) == 11, 20)


def test_a_full_disk_for_the_journal_is_reported_once_and_the_requests_go_on(
        tmp_path: Path, app_of, caplog: pytest.LogCaptureFixture) -> None:
    journal = tmp_path / "small"
    journal.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(journal)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill ({mounted.stderr.decode().strip()})")
    try:
        url = "sqlite:///" + str(tmp_path / "audit.db")
        # The database is down too, so that nothing drains the journal: it fills.
        base, app, sigobs, trail = app_of(SIGOBS_AUDIT_URL="sqlite:///" + str(tmp_path / "audit.db" / "x" / "y"),
                                          SIGOBS_AUDIT_JOURNAL=str(journal))
        (tmp_path / "audit.db").write_text("not a directory")
        with caplog.at_level(logging.WARNING, "flask_sigobs"):
            for i in range(200):
                status = post(base, "/login", {"username": "bob", "password": "x"},
                              **{"User-Agent": "a" * 900})
                assert status == 401
        full = [r.getMessage() for r in caplog.records if "could not write its journal" in r.getMessage()]
        assert len(full) == 1 and "No space left" in full[0]
        assert trail.journal.dropped > 0
    finally:
        subprocess.run(["umount", "-l", str(journal)], capture_output=True)


def test_hostile_names_and_agents_become_bounded_escaped_rows(tmp_path: Path, app_of) -> None:
    url = "sqlite:///" + str(tmp_path / "audit.db")
    base, app, sigobs, trail = app_of(SIGOBS_AUDIT_URL=url, SIGOBS_AUDIT_JOURNAL=str(tmp_path / "journal"))
    port = int(base.rsplit(":", 1)[1])
    names = [b"evil\x1b[2J\x00\r\nname", b"\xff\xfe\xc3\x28 not utf-8", b"n" * 10_000_000]
    agent = "agent\x1b]0;pwned\x07\x7f\x9b end"
    for name in names:
        head = (f"POST /hostile HTTP/1.1\r\nHost: x\r\nUser-Agent: {agent}\r\nX-Note: \x01\x02\r\n"
                f"Content-Length: {len(name)}\r\nConnection: close\r\n\r\n").encode("latin-1")
        status, _, _ = raw_request(port, head + name, method="POST")
        assert status == 401
    sigobs.flush(app)
    found = rows(url)
    assert len(found) == 3
    for row in found:
        assert len(row["enduser.id"]) < 1200 and len(row["user_agent.original"]) < 1200
    # Invalid UTF-8 arrives escaped as visible text, never as a lone surrogate no encoder can write.
    assert not any(0xD800 <= ord(ch) <= 0xDFFF for row in found for value in row.values() if isinstance(value, str)
                   for ch in value)
    assert "\\udcff" in found[1]["enduser.id"] or "\\xff" in found[1]["enduser.id"], found[1]["enduser.id"]
    assert found[2]["enduser.id"].startswith("n" * 1000) and "more chars" in found[2]["enduser.id"]
    status, table, _ = cli("audit", "list", "--db", url)
    assert status == 0
    assert not any(ch in table for ch in "\x00\x1b\x07\x7f\x9b\r"), table  # a terminal gets no escape sequence
    assert "\\x1b" in table
    status, out, _ = cli("audit", "export", "--db", url, "--format", "csv")
    assert status == 0 and out.count("\n") >= 4
    assert cli("audit", "verify", "--db", url)[0] == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=secrets)
def test_random_secrets_never_reach_a_row(tmp_path_factory: pytest.TempPathFactory, secret: str) -> None:
    from flask import Flask, current_app, request

    from flask_sigobs import SigObs, auth

    tmp = tmp_path_factory.mktemp("secrets")
    app = Flask("audit_secrets")
    url = "sqlite:///" + str(tmp / "audit.db")
    app.config.update(SECRET_KEY="k", SIGOBS_AUDIT_URL=url, SIGOBS_AUDIT_JOURNAL=str(tmp / "journal"),
                      SIGOBS_LOG_FILE=str(tmp / "log"), SIGOBS_AUDIT_MAX_FAILURES=0)

    @app.post("/login")
    def login():
        sent = [request.form.get("password"), request.headers.get("Authorization", "").partition(" ")[2],
                request.cookies.get("remember_token"), (request.get_json(silent=True) or {}).get("token")]
        for value in sent:
            if value:
                auth.login_failed.send(current_app._get_current_object(), user="alice", password=value,
                                       details={"nested": [{"api_key": value}]}, access_token=value)
        auth.login_succeeded.send(current_app._get_current_object(), user="alice", session_token=secret)
        return "ok"

    sigobs = SigObs(app)
    server = serve(app)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        form = urllib.parse.urlencode({"password": secret}).encode()
        http(base + "/login", "POST", form, {"Content-Type": "application/x-www-form-urlencoded",
                                             "Authorization": f"Bearer {urllib.parse.quote(secret)}",
                                             "Cookie": f"remember_token={urllib.parse.quote(secret)}; session={urllib.parse.quote(secret)}"})
        http(base + "/login", "POST", json.dumps({"token": secret}).encode(), {"Content-Type": "application/json"})
        sigobs.flush(app)
        found = rows(url)
        assert len(found) >= 4
        everything = json.dumps(found, ensure_ascii=False) + cli("audit", "export", "--db", url, "--format", "csv")[1]
        raw = b"".join(p.read_bytes() for p in tmp.glob("audit.db*"))
        for variant in {secret, urllib.parse.quote(secret), urllib.parse.quote_plus(secret)}:
            assert variant not in everything
            assert variant.encode() not in raw
    finally:
        server.shutdown()
        sigobs.runtime(app).audit.close()


# -- real gunicorn ---------------------------------------------------------------------------------

def hammer(base: str, seconds: float, threads: int = 4) -> int:
    """Failed logins from ``threads`` clients for ``seconds``; the responses received."""
    answered = [0] * threads
    stop = time.monotonic() + seconds

    def client(slot: int) -> None:
        body = urllib.parse.urlencode({"username": "bob", "password": "wrong"}).encode()
        while time.monotonic() < stop:
            status, _, _ = http(base + "/login", "POST", body, {"Content-Type": "application/x-www-form-urlencoded"})
            assert status == 401
            answered[slot] += 1

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(answered)


def audit_env(tmp_path: Path, **extra: str) -> tuple[dict[str, str], str]:
    url = "sqlite:///" + str(tmp_path / "audit.db")
    env = server_env(SIGOBS_AUDIT_URL=url, SIGOBS_AUDIT_JOURNAL=str(tmp_path / "journal"),
                     SIGOBS_AUDIT_MAX_FAILURES="0", SIGOBS_LOG_FILE=str(tmp_path / "log.jsonl"), **extra)
    return env, url


def test_sigkill_of_every_process_under_load_then_a_restart_loses_no_row(tmp_path: Path) -> None:
    # A long flush interval: at the kill, most rows are in the journals only.
    env, url = audit_env(tmp_path, SIGOBS_AUDIT_FLUSH_INTERVAL="30")
    with gunicorn(tmp_path, env, workers=2, app="tests.audit_served:app") as server:
        answered = hammer(server.base, 3.0)
        os.killpg(server.process.pid, 9)  # right after the last response: master and both workers
        server.process.wait(10)
    assert answered > 50
    assert count(url) < answered  # the journals hold what the database does not (yet)
    env["SIGOBS_AUDIT_FLUSH_INTERVAL"] = "0.1"
    with gunicorn(tmp_path, env, workers=2, app="tests.audit_served:app"):
        assert wait_for(lambda: count(url) == answered, 30), (count(url), answered)
        time.sleep(0.5)
        assert count(url) == answered  # once each: never twice
    assert cli("audit", "verify", "--db", url)[0] == 0
    assert not list((tmp_path / "journal").glob("*.journal"))  # adopted, written and deleted


@pytest.mark.parametrize("preload", [False, True])
def test_sigterm_writes_the_journal_to_the_database_before_exit(tmp_path: Path, preload: bool) -> None:
    env, url = audit_env(tmp_path, SIGOBS_AUDIT_FLUSH_INTERVAL="30")
    args = ("--preload",) if preload else ()  # preloaded: the app (and its trail) made in the master, then forked
    with gunicorn(tmp_path, env, workers=2, app="tests.audit_served:app", args=args) as server:
        answered = hammer(server.base, 1.5)
        assert server.terminate() == 0
    assert count(url) == answered
    assert cli("audit", "verify", "--db", url)[0] == 0


def test_the_journal_is_bounded_while_the_database_is_down(tmp_path: Path, app_of,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "db"
    blocker.write_text("not a directory")
    url = "sqlite:///" + str(blocker / "audit.db")
    base, app, sigobs, trail = app_of(SIGOBS_AUDIT_URL=url, SIGOBS_AUDIT_JOURNAL=str(tmp_path / "journal"),
                                      SIGOBS_AUDIT_JOURNAL_MAX=8192)
    with caplog.at_level(logging.WARNING, "flask_sigobs"):
        for i in range(60):
            assert post(base, "/login", {"username": "bob", "password": f"no{i}"}) == 401
    kept = sum(p.stat().st_size for p in (tmp_path / "journal").glob("*.journal"))
    assert kept <= 8192 and trail.journal.dropped > 0
    assert any("could not be journaled" in r.getMessage() for r in caplog.records)  # said, with a count
    blocker.unlink()
    blocker.mkdir()
    assert wait_for(lambda: count(url) == 60 - trail.journal.dropped, 10)
    assert cli("audit", "verify", "--db", url)[0] == 0
