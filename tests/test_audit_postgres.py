"""The audit trail on a real PostgreSQL 15 (a throwaway cluster on a loopback port): the same rows,
commands and chain as on SQLite, and a server that is down at start and goes down mid-run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from .audit_support import PostgresCluster, cli, generate, login_app, postgres_cluster, postgres_missing
from .servers import free_port
from .test_audit_trail import post, serve

missing = postgres_missing()
pytestmark = pytest.mark.skipif(missing is not None, reason=missing or "")


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    with postgres_cluster(free_port()) as running:
        yield running


@pytest.fixture
def database(cluster: PostgresCluster, request: pytest.FixtureRequest) -> str:
    return cluster.create_database(request.node.name.replace("[", "_").replace("]", "")[:60].lower())


@pytest.fixture
def app_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for key in ("SIGOBS_AUDIT_URL", "SIGOBS_AUDIT_KEY"):
        monkeypatch.delenv(key, raising=False)
    made = []

    def make(url: str, **config: Any):
        app, sigobs = login_app(f"pg_{len(made)}", SIGOBS_AUDIT_URL=url, SIGOBS_AUDIT_JOURNAL=str(tmp_path / "journal"),
                                SIGOBS_LOG_FILE=str(tmp_path / f"log{len(made)}.jsonl"), **config)
        server = serve(app)
        made.append((server, sigobs, app))
        return f"http://127.0.0.1:{server.server_port}", app, sigobs, sigobs.runtime(app).audit

    yield make
    for server, sigobs, app in made:
        server.shutdown()
        sigobs.runtime(app).audit.close()


def listed(url: str, *args: str) -> list[dict[str, Any]]:
    status, out, err = cli("audit", "list", "--db", url, "--json", "--limit", "0", *args)
    assert status == 0, err
    return [json.loads(line) for line in out.splitlines()]


def count(url: str) -> int:
    try:
        return len(listed(url))
    except AssertionError:  # no schema yet: the writer has not reached the server
        return -1


def wait_for(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_rows_commands_and_chain_on_postgresql(database: str, app_of, monkeypatch: pytest.MonkeyPatch) -> None:
    base, app, sigobs, _ = app_of(database, SIGOBS_AUDIT_KEY="pg-key", SIGOBS_AUDIT_MAX_FAILURES="3/5m")
    for password in ("a", "b", "c"):
        assert post(base, "/login", {"username": "alice", "password": password}) == 401
    from flask_sigobs import audit

    with app.app_context():  # within a flush interval or so (the first one connects and makes the schema)
        assert wait_for(lambda: bool(audit.check(user="alice")), 10)
    assert post(base, "/login", {"username": "alice", "password": "wonderland"}) == 429  # locked
    assert post(base, "/login", {"username": "ghost", "password": "x"}) == 429  # the address too
    sigobs.flush(app)
    rows = listed(database)
    assert [r["event"] for r in rows] == ["auth.login_failed"] * 3 + ["auth.login_fail_max"]
    assert rows[0]["reason"] == "bad_password" and rows[0]["data"] == {"password": "[REDACTED]"}
    assert listed(database, "--ip", "127.0.0.0/8", "--event", "login_failed", "--since", "1h") == rows[:3]
    assert listed(database, "--trace", rows[1]["trace_id"]) == [rows[1]]
    status, out, _ = cli("audit", "stats", "--db", database, "--json")
    found = json.loads(out)
    assert found["users"][0]["enduser.id"] == "alice" and found["users"][0]["failures"] == 3
    assert found["addresses"][0]["distinct_users"] == 1
    monkeypatch.setenv("SIGOBS_AUDIT_KEY", "pg-key")
    assert cli("audit", "verify", "--db", database)[0] == 0
    from flask_sigobs.audit.store import connect

    store = connect(database)
    store.execute("UPDATE sigobs_audit SET enduser_id = 'bob' WHERE id = 2")
    store.close()
    status, out, _ = cli("audit", "verify", "--db", database)
    assert status == 1 and "row id 2" in out
    status, out, _ = cli("audit", "export", "--db", database, "--format", "csv")
    assert status == 0 and len(out.splitlines()) == 5


def test_a_server_down_at_start_and_mid_run_loses_nothing(tmp_path: Path, app_of) -> None:
    cluster = PostgresCluster(free_port())
    try:
        url = cluster.url()
        base, app, sigobs, trail = app_of(url, SIGOBS_AUDIT_MAX_FAILURES="0")
        for i in range(10):  # nobody listens yet
            assert post(base, "/login", {"username": "bob", "password": f"no{i}"}) == 401
        time.sleep(0.3)
        assert trail.backlog() > 0
        cluster.start()
        assert wait_for(lambda: count(url) == 10)
        cluster.stop()  # mid-run
        started = time.monotonic()
        for i in range(10):
            assert post(base, "/login", {"username": "bob", "password": f"again{i}"}) == 401
        assert time.monotonic() - started < 5
        time.sleep(0.3)
        assert trail.journal.backlog > 0
        cluster.start()
        assert wait_for(lambda: count(url) == 20), (count(url), trail.store_failures, trail.journal.backlog,
                                                    trail._thread, trail._own_position)
        assert cli("audit", "verify", "--db", url)[0] == 0
    finally:
        cluster.remove()


def test_purge_on_postgresql(database: str) -> None:
    generate(database, 2000, chained=True, span_s=200 * 86400)
    status, out, _ = cli("audit", "purge", "--db", database, "--older-than", "90d")
    assert status == 0
    left = listed(database)
    assert 0 < len(left) < 2000
    status, out, _ = cli("audit", "verify", "--db", database)
    assert status == 0, out
