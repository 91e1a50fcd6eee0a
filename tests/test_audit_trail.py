"""The audit trail end to end on a real server and real SQLite files: each auth decision becomes
one row with the log line's fields, a name that matches no account is protected, the chain shows
every kind of tampering, and ``sigobs audit`` reads it all back."""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from flask_sigobs.audit.rows import reason_code

from .audit_support import cli, generate, login_app
from .conftest import http


def serve(app: Any) -> Any:
    from werkzeug.serving import make_server
    import threading

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def post(base: str, path: str, form: dict[str, str], **headers: str) -> int:
    data = urllib.parse.urlencode(form).encode()
    status, _, _ = http(base + path, "POST", data, {"Content-Type": "application/x-www-form-urlencoded", **headers})
    return status


@pytest.fixture
def trail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A login app on a real server, its trail in tmp_path; yields (base URL, app, sigobs, db URL)."""
    for key in ("SIGOBS_AUDIT_URL", "SIGOBS_AUDIT_KEY", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(key, raising=False)
    made = []

    def make(**config: Any):
        app, sigobs = login_app(f"audit_{len(made)}", SIGOBS_LOG_FILE=str(tmp_path / f"log{len(made)}.jsonl"),
                                **config)
        server = serve(app)
        made.append((server, sigobs, app))
        return f"http://127.0.0.1:{server.server_port}", app, sigobs

    yield make
    for server, sigobs, app in made:
        server.shutdown()
        runtime = sigobs.runtime(app)
        if runtime.audit is not None:
            runtime.audit.close()


def db_of(tmp_path: Path) -> str:
    return "sqlite:///" + str(tmp_path / "audit.db")


def rows(url: str, *args: str) -> list[dict[str, Any]]:
    status, out, err = cli("audit", "list", "--db", url, "--json", "--limit", "0", *args)
    assert status == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_each_auth_decision_becomes_one_row_with_the_log_lines_fields(tmp_path: Path, trail) -> None:
    url = db_of(tmp_path)
    base, app, sigobs = trail(SIGOBS_AUDIT_URL=url, SIGOBS_AUDIT_JOURNAL=str(tmp_path / "journal"))
    agent = {"User-Agent": "audit-test/1.0", "Cookie": "session=the-session-id-itself"}
    assert post(base, "/login", {"username": "alice", "password": "not-it"}, **agent) == 401
    assert post(base, "/login", {"username": "alice", "password": "wonderland"}, **agent) == 200
    assert http(base + "/admin", headers=agent)[0] == 403
    assert post(base, "/logout", {"username": "alice"}, **agent) == 200
    sigobs.flush(app)
    found = rows(url)
    assert [r["event"] for r in found] == ["auth.login_failed", "auth.login_succeeded", "auth.access_denied",
                                          "auth.logged_out"]
    assert [r["outcome"] for r in found] == ["failure", "success", "failure", "success"]
    failed = found[0]
    assert failed["reason"] == "bad_password" and failed["reason.text"] == "bad password"
    assert found[2]["reason"] == "not_permitted" and found[2]["data"] == {"permission": "admin"}
    assert found[1]["data"] == {"method": "password"}
    lines = [json.loads(line) for line in (tmp_path / "log0.jsonl").read_text().splitlines()]
    logged = next(line for line in lines if line["event"] == "auth.login_failed")
    for key in ("enduser.id", "client.address", "user_agent.original", "request.id", "trace_id", "span_id",
                "service.name"):
        assert failed[key] == logged[key], key  # the row leads to its log line and its trace
    assert failed["enduser.id"] == "alice" and failed["client.address"] == "127.0.0.1"
    assert failed["http.route"] == "/login" and found[2]["http.route"] == "/admin"
    assert len(failed["time"]) == 27 and failed["time"].endswith("Z")  # microseconds, UTC
    assert failed["data"] == {"password": "[REDACTED]"}
    assert len(failed["session.id_hash"]) == 32 and "the-session-id-itself" not in json.dumps(found)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("audit.db*"))
    assert b"not-it" not in raw and b"wonderland" not in raw and b"the-session-id-itself" not in raw
    assert cli("audit", "verify", "--db", url)[0] == 0


def test_a_name_that_matches_no_account_is_kept_as_a_keyed_hash(tmp_path: Path, trail) -> None:
    url = db_of(tmp_path)
    base, app, sigobs = trail(SIGOBS_AUDIT_URL=url, SIGOBS_AUDIT_JOURNAL=str(tmp_path / "journal"))
    typed = "Hunter2-typed-in-the-user-field"
    for _ in range(2):
        assert post(base, "/login", {"username": typed, "password": "x"}) == 401
    sigobs.flush(app)
    found = rows(url)
    assert [r["reason"] for r in found] == ["unknown_user", "unknown_user"]
    assert found[0]["enduser.id"].startswith("hash:") and found[0]["enduser.id"] == found[1]["enduser.id"]
    raw = b"".join(p.read_bytes() for p in [*tmp_path.glob("audit.db*"), *(tmp_path / "journal").glob("*")])
    assert typed.encode() not in raw
    # Nor in the log lines: the line says the row's hash, so the two still lead to each other.
    log = (tmp_path / "log0.jsonl").read_text()
    assert typed not in log
    logged = [json.loads(line) for line in log.splitlines() if '"auth.login_failed"' in line]
    assert [line["enduser.id"] for line in logged] == [found[0]["enduser.id"]] * 2
    # The same name under another key is another hash: without the key, a guess cannot be tested.
    base2, app2, sigobs2 = trail(SIGOBS_AUDIT_URL=db_of(tmp_path / "other"), SECRET_KEY="another",
                                 SIGOBS_AUDIT_JOURNAL=str(tmp_path / "journal2"))
    post(base2, "/login", {"username": typed, "password": "x"})
    sigobs2.flush(app2)
    assert rows(db_of(tmp_path / "other"))[0]["enduser.id"] != found[0]["enduser.id"]


def test_with_the_key_list_finds_a_protected_name_by_the_name(tmp_path: Path, trail,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url = db_of(tmp_path)
    base, app, sigobs = trail(SIGOBS_AUDIT_URL=url, SIGOBS_AUDIT_JOURNAL=str(tmp_path / "journal"),
                              SIGOBS_AUDIT_KEY="the-key")
    post(base, "/login", {"username": "eve", "password": "x"})
    post(base, "/login", {"username": "alice", "password": "x"})
    sigobs.flush(app)
    assert rows(url, "--user", "eve") == []  # without the key: only the hash finds it
    monkeypatch.setenv("SIGOBS_AUDIT_KEY", "the-key")
    found = rows(url, "--user", "eve")
    assert len(found) == 1 and found[0]["enduser.id"].startswith("hash:") and found[0]["reason"] == "unknown_user"
    assert len(rows(url, "--user", "alice")) == 1


def test_unknown_names_can_be_kept_or_dropped_by_configuration(tmp_path: Path, trail) -> None:
    for mode, expected in (("keep", "eve"), ("drop", None)):
        url = db_of(tmp_path / mode)
        base, app, sigobs = trail(SIGOBS_AUDIT_URL=url, SIGOBS_AUDIT_UNKNOWN_USERS=mode,
                                  SIGOBS_AUDIT_JOURNAL=str(tmp_path / f"journal-{mode}"))
        post(base, "/login", {"username": "eve", "password": "x"})
        sigobs.flush(app)
        assert rows(url)[0].get("enduser.id") == expected


def test_free_text_reasons_map_to_the_vocabulary() -> None:
    assert reason_code("Bad password", None) == "bad_password"
    assert reason_code("invalid credentials!", None) == "bad_password"
    assert reason_code("No such user", None) == "unknown_user"
    assert reason_code("mfa_failed", None) == "mfa_failed"
    assert reason_code("account disabled", None) == "disabled"
    assert reason_code("the moon is wrong", None) == "other"
    assert reason_code(None, "not_permitted") == "not_permitted"


# -- the hash chain --------------------------------------------------------------------------------

def chained_trail(tmp_path: Path, trail, count: int = 6, **config: Any) -> str:
    url = db_of(tmp_path)
    base, app, sigobs = trail(SIGOBS_AUDIT_URL=url, SIGOBS_AUDIT_JOURNAL=str(tmp_path / "journal"),
                              SIGOBS_AUDIT_MAX_FAILURES=0, **config)
    for i in range(count):
        post(base, "/login", {"username": "bob", "password": f"wrong{i}"})
    sigobs.flush(app)
    return url


def tamper(url: str, sql: str) -> None:
    connection = sqlite3.connect(url[len("sqlite:///"):])
    connection.execute(sql)
    connection.commit()
    connection.close()


SHIFT = ["UPDATE sigobs_audit SET seq = seq + 1000 WHERE seq >= 3", "UPDATE sigobs_audit SET seq = seq - 999 WHERE seq >= 1000"]


@pytest.mark.parametrize("changes, problem, named", [
    (["UPDATE sigobs_audit SET client_address = '198.51.100.7' WHERE id = 3"], "hash does not match", "row id 3"),
    (["UPDATE sigobs_audit SET data = NULL WHERE id = 4"], "hash does not match", "row id 4"),
    (["DELETE FROM sigobs_audit WHERE id = 3"], "rows removed", "row id 4"),
    (["DELETE FROM sigobs_audit WHERE id = 6"], "rows removed", "the end of the trail"),  # the writer's head says so
    ([*SHIFT, "INSERT INTO sigobs_audit (time, event, outcome, writer, seq, hash) SELECT time, event, outcome, "
              "writer, 3, hash FROM sigobs_audit WHERE id = 2"], "inserted", "row id 7"),
    (["UPDATE sigobs_audit SET id = 100, seq = 100 WHERE id = 3", "UPDATE sigobs_audit SET id = 3, seq = 3 WHERE id = 4",
      "UPDATE sigobs_audit SET id = 4, seq = 4 WHERE id = 100"], "hash does not match", "row id 3"),  # reordered
    (["UPDATE sigobs_audit SET id = 100 WHERE id = 3", "UPDATE sigobs_audit SET id = 3 WHERE id = 4",
      "UPDATE sigobs_audit SET id = 4 WHERE id = 100"], "out of order", "row id 3"),  # ids swapped alone
])
def test_verify_names_the_first_broken_row(tmp_path: Path, trail, changes: list[str], problem: str,
                                           named: str) -> None:
    url = chained_trail(tmp_path, trail)
    status, out, _ = cli("audit", "verify", "--db", url)
    assert status == 0 and "intact: 6 rows" in out
    for change in changes:
        tamper(url, change)
    status, out, _ = cli("audit", "verify", "--db", url)
    assert status == 1, out
    assert problem in out and f"BROKEN at {named}" in out, out


def test_with_a_key_a_recomputed_chain_is_caught(tmp_path: Path, trail, monkeypatch: pytest.MonkeyPatch) -> None:
    url = chained_trail(tmp_path, trail, SIGOBS_AUDIT_KEY="k" * 32)
    monkeypatch.setenv("SIGOBS_AUDIT_KEY", "k" * 32)
    assert cli("audit", "verify", "--db", url)[0] == 0
    # Someone with write access but not the key edits a row and recomputes its hash without a key.
    from flask_sigobs.audit.chain import Chainer
    from flask_sigobs.audit.store import COLUMNS, connect

    store = connect(url)
    row = store.query("SELECT writer, seq, " + ", ".join(COLUMNS) + " FROM sigobs_audit WHERE id = 2")[0]
    previous = store.query("SELECT hash FROM sigobs_audit WHERE id = 1")[0][0]
    values = list(row[2:])
    values[COLUMNS.index("client_address")] = "203.0.113.9"
    forged = Chainer(None).row_hash(previous, row[0], row[1], tuple(values))
    store.execute("UPDATE sigobs_audit SET client_address = '203.0.113.9', hash = :h WHERE id = 2", {"h": forged})
    store.close()
    status, out, _ = cli("audit", "verify", "--db", url)
    assert status == 1 and "row id 2" in out
    monkeypatch.delenv("SIGOBS_AUDIT_KEY")
    status, _, err = cli("audit", "verify", "--db", url)
    assert status == 2 and "key" in err  # without the key: said so, not "every row broken"


def test_purge_keeps_what_remains_verifiable(tmp_path: Path, trail) -> None:
    url = chained_trail(tmp_path, trail)
    tamper(url, "UPDATE sigobs_audit SET time = '2020-01-01T00:00:00.000000Z' WHERE id <= 4")
    # (the rewritten times break rows 1-4; the purge deletes exactly those, the rest stays whole)
    status, out, _ = cli("audit", "purge", "--db", url, "--older-than", "90d")
    assert status == 0 and "4 rows" in out
    status, out, _ = cli("audit", "verify", "--db", url)
    assert status == 0 and "intact: 2 rows" in out, out
    tamper(url, "UPDATE sigobs_audit_checkpoint SET seq = 3")
    assert cli("audit", "verify", "--db", url)[0] == 1


# -- the command line ------------------------------------------------------------------------------

def test_list_filters_and_exports(tmp_path: Path) -> None:
    url = db_of(tmp_path)
    generate(url, 3000, span_s=3 * 86400)
    everything = rows(url)
    assert len(everything) == 3000
    alice = rows(url, "--user", "user42")
    assert alice and all(r["enduser.id"] == "user42" for r in alice)
    network = rows(url, "--ip", "10.3.0.0/16")
    assert network and all(r["client.address"].startswith("10.3.") for r in network)
    assert len(network) == sum(1 for r in everything if r["client.address"].startswith("10.3."))
    one = everything[5]["client.address"]
    assert all(r["client.address"] == one for r in rows(url, "--ip", one))
    failed = rows(url, "--event", "login_failed", "--outcome", "failure")
    assert failed and all(r["event"] == "auth.login_failed" for r in failed)
    recent = rows(url, "--since", "1d")
    assert 0 < len(recent) < 3000 and min(r["time"] for r in recent) > everything[0]["time"]
    older = rows(url, "--until", recent[0]["time"])
    assert len(older) + len(recent) == 3000
    assert rows(url, "--trace", everything[7]["trace_id"]) == [everything[7]]
    status, out, _ = cli("audit", "list", "--db", url, "--limit", "3")
    assert status == 0 and len(out.splitlines()) == 4 and out.startswith("time")
    status, out, _ = cli("audit", "export", "--db", url, "--format", "csv", "--user", "user42")
    assert status == 0 and out.splitlines()[0].startswith("time,event,outcome,reason,reason.text,enduser.id")
    assert len(out.splitlines()) == len(alice) + 1
    status, out, _ = cli("audit", "export", "--db", url)
    assert [json.loads(line) for line in out.splitlines()] == everything
    assert cli("audit", "list", "--db", url, "--since", "yesterday")[0] == 2
    assert cli("audit", "list", "--db", str(tmp_path / "nothing.db"))[0] == 2


def test_stats_counts_per_user_and_address(tmp_path: Path, trail) -> None:
    url = db_of(tmp_path)
    base, app, sigobs = trail(SIGOBS_AUDIT_URL=url, SIGOBS_AUDIT_JOURNAL=str(tmp_path / "journal"),
                              SIGOBS_AUDIT_MAX_FAILURES=0)
    for password in ("a", "b", "wonderland", "c", "wonderland"):
        post(base, "/login", {"username": "alice", "password": password})
    post(base, "/login", {"username": "bob", "password": "x"})
    sigobs.flush(app)
    status, out, _ = cli("audit", "stats", "--db", url, "--json")
    found = json.loads(out)
    alice = next(u for u in found["users"] if u["enduser.id"] == "alice")
    assert (alice["attempts"], alice["failures"], alice["successes"], alice["successes_after_failures"]) == (5, 3, 2, 2)
    assert found["addresses"] == [{"client.address": "127.0.0.1", "attempts": 6, "failures": 4, "distinct_users": 2}]
    assert found["reasons"] == [{"reason": "bad_password", "count": 4}]
    assert sum(p["failures"] for p in found["failures_over_time"]) == 4
    status, out, _ = cli("audit", "stats", "--db", url)
    assert status == 0 and "per user" in out and "failures over time" in out and "█" in out


# -- configuration ---------------------------------------------------------------------------------

def test_the_audit_off_costs_nothing(tmp_path: Path, trail) -> None:
    import threading

    before = {t.name for t in threading.enumerate()}
    base, app, sigobs = trail(SIGOBS_AUDIT=False, SIGOBS_AUDIT_JOURNAL=str(tmp_path / "journal"),
                              SIGOBS_AUDIT_URL=db_of(tmp_path))
    assert sigobs.runtime(app).audit is None
    assert post(base, "/login", {"username": "alice", "password": "x"}) == 401
    from flask_sigobs import audit

    with app.app_context():
        assert not audit.check(user="alice")
    assert not (tmp_path / "journal").exists() and not (tmp_path / "audit.db").exists()
    assert "flask-sigobs-audit" not in {t.name for t in threading.enumerate()} - before


@pytest.mark.parametrize("key, value, says", [
    ("SIGOBS_AUDIT_URL", "just-a-path.db", "SQLAlchemy URL"),
    ("SIGOBS_AUDIT_MAX_FAILURES", "ten", "SIGOBS_AUDIT_MAX_FAILURES"),
    ("SIGOBS_AUDIT_FLUSH_INTERVAL", "0", "SIGOBS_AUDIT_FLUSH_INTERVAL"),
    ("SIGOBS_AUDIT_UNKNOWN_USERS", "shout", "SIGOBS_AUDIT_UNKNOWN_USERS"),
    ("SIGOBS_AUDIT", "maybe", "SIGOBS_AUDIT"),
])
def test_a_bad_setting_fails_at_init_naming_its_key(key: str, value: str, says: str) -> None:
    from flask import Flask

    from flask_sigobs import ConfigError, SigObs

    app = Flask("bad_audit_setting")
    app.config[key] = value
    with pytest.raises(ConfigError, match=says):
        SigObs(app)


def test_flask_sigobs_audit_is_the_same_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = db_of(tmp_path)
    generate(url, 10)
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "tests.audit_served:app", "sigobs", "audit",
                           "list", "--db", url, "--json"], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 10


# -- the example and the tour ------------------------------------------------------------------------

def test_the_example_app_answers_429_with_retry_after_once_locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from examples.app import create_app

    monkeypatch.delenv("SIGOBS_AUDIT_URL", raising=False)
    app = create_app({"SIGOBS_AUDIT_URL": db_of(tmp_path), "SIGOBS_AUDIT_JOURNAL": str(tmp_path / "journal"),
                      "SIGOBS_AUDIT_MAX_FAILURES": "3/5m", "SIGOBS_AUDIT_FLUSH_INTERVAL": 0.05,
                      "SIGOBS_LOG_FILE": str(tmp_path / "log")})
    server = serve(app)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        for i in range(3):
            assert post(base, "/login", {"username": "alice", "password": f"guess{i}"}) == 401
        deadline = time.monotonic() + 10
        status, headers = 401, {}
        while time.monotonic() < deadline and status != 429:
            time.sleep(0.05)
            status, headers, _ = http(base + "/login", "POST", b"username=alice&password=wonderland",
                                      {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 429 and int(headers["Retry-After"]) > 0  # the right password, refused: locked
    finally:
        server.shutdown()
        app.extensions["sigobs"].runtime(app).audit.close()


def test_the_tour_ends_with_the_audit_list_and_stats_of_what_it_did() -> None:
    import subprocess
    import sys

    root = Path(__file__).parent.parent
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("SIGOBS_", "OTEL_"))}
    done = subprocess.run([sys.executable, "examples/tour.py"], capture_output=True, text=True, timeout=120,
                          cwd=root, env=env)
    assert done.returncode == 0, done.stderr
    tail = done.stderr[done.stderr.index("# tour: sigobs audit list"):]
    assert "login_failed" in tail and "bad_password" in tail and "access_denied" in tail
    assert "per user" in tail and "failures over time" in tail
    assert all(line.startswith("{") for line in done.stdout.splitlines())  # stdout: the JSON lines alone
