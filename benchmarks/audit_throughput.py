"""The audit trail's speed: rows per second into SQLite and PostgreSQL beside a plain driver
``executemany`` of the same rows, and what a request pays per audit event.

    python benchmarks/audit_throughput.py                # SQLite, and PostgreSQL when it can be had
    python benchmarks/audit_throughput.py --rounds 3     # a smoke run

- **trail**: rows already in the journal (as requests left them) into the database by the writer's
  own code (``Trail.flush``): reading and parsing the journal, the hash chain (HMAC-SHA256), the
  batched inserts with their journal position and chain head, one transaction per 5,000 rows.
- **driver**: the same rows, already as dicts, by the driver's ``executemany`` into the same table
  (``sqlite3``, or psycopg 3 through SQLAlchemy: what a hand-written audit table would do), in one
  transaction per 5,000 rows, no chain, no journal.
- **request**: ``Trail.record`` of one auth event (the row built, one ``os.write`` to the journal),
  in nanoseconds, the median of rounds; and a login request with the audit on beside it off.

Goals (issue 18): >= 20,000 rows/s into SQLite, >= 10,000 rows/s into PostgreSQL, <= 5 us per
event on the request path. It prints numbers; it does not pass or fail.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _settings(directory: str, url: str) -> Any:
    from flask_sigobs.audit.settings import AuditSettings

    return AuditSettings(url=url, key=b"bench-key", hash_key=b"bench-key", journal=os.path.join(directory, "journal"),
                         journal_max=1 << 34, flush_interval=60, max_failures=0, window=300,
                         unknown_users="hash", max_data=4096)


def _state(i: int) -> Any:
    environ = {"HTTP_COOKIE": "session=eyJfZnJlc2giOmZhbHNlfQ.ZZZ.abc%d" % i}
    return SimpleNamespace(trace_id="%032x" % (i * 7919 + 1), span_id="%016x" % (i + 1),
                           base={"http.route": "/login"}, environ=environ)


def _attributes(i: int) -> dict[str, Any]:
    return {"enduser.id": f"user{i % 5000}", "client.address": f"10.0.{i % 250}.{i % 200 + 1}",
            "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) bench/1.0", "reason": "bad password",
            "password": "[REDACTED]", "request.id": "%032x" % i}


def trail_rate(url: str, rows: int) -> float:
    """Rows per second through the writer: journal -> parse -> chain -> database."""
    from flask_sigobs.audit.trail import Trail

    directory = tempfile.mkdtemp(prefix="sigobs-bench-")
    try:
        trail = Trail(_settings(directory, url), "bench", "session")
        trail._thread = True  # type: ignore[assignment]  # no writer thread: the flush below is timed alone
        for i in range(rows):
            trail.record("auth.login_failed", _attributes(i), _state(i))
        trail._connect()  # the connection and the schema are not what is measured
        started = time.perf_counter()
        written = trail.flush()
        elapsed = time.perf_counter() - started  # wall time: the database server's work counts too
        assert written == rows, (written, rows)
        trail._thread = None
        trail._stop = True
        trail._drop_store()
        return rows / elapsed
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def driver_rate(url: str, rows: int) -> float:
    """The same rows by the plain driver's executemany into the same schema."""
    from flask_sigobs.audit.store import INSERT, connect
    from flask_sigobs.audit.trail import Trail

    directory = tempfile.mkdtemp(prefix="sigobs-bench-")
    try:
        trail = Trail(_settings(directory, url), "bench", "session")
        trail._thread = True  # type: ignore[assignment]
        dicts = []
        for i in range(rows):
            trail.record("auth.login_failed", _attributes(i), _state(i))
        with open(trail.journal.path, "rb") as journal:  # type: ignore[arg-type]
            for n, line in enumerate(journal):
                row = trail._row(line.rstrip(b"\n"))
                row.update(writer="driver", seq=n + 1, hash="0" * 64)  # type: ignore[union-attr]
                dicts.append(row)
        trail._stop = True
        store = connect(url)
        store.execute("DELETE FROM sigobs_audit WHERE writer = 'driver'")
        raw = store._conn  # the driver itself: sqlite3's connection, or SQLAlchemy's psycopg one
        started = time.perf_counter()
        if store.dialect == "sqlite":
            for start in range(0, rows, 5000):
                raw.execute("BEGIN")
                raw.executemany(INSERT, dicts[start:start + 5000])
                raw.execute("COMMIT")
        else:
            cursor_owner = raw.connection.driver_connection  # psycopg.Connection
            sql = INSERT
            for column in sorted(dicts[0], key=len, reverse=True):
                sql = sql.replace(f":{column}", f"%({column})s")
            for start in range(0, rows, 5000):
                with cursor_owner.transaction(), cursor_owner.cursor() as cursor:
                    cursor.executemany(sql, dicts[start:start + 5000])
        elapsed = time.perf_counter() - started
        store.close()
        return rows / elapsed
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def record_ns(rounds: int, calls: int = 20000) -> float:
    """Nanoseconds per ``Trail.record`` (the request's whole share of the audit), median of rounds."""
    from flask_sigobs.audit.trail import Trail

    directory = tempfile.mkdtemp(prefix="sigobs-bench-")
    try:
        trail = Trail(_settings(directory, "sqlite:///" + os.path.join(directory, "a.db")), "bench", "session")
        trail._thread = True  # type: ignore[assignment]
        attributes, state = _attributes(1), _state(1)
        record = trail.record
        results = []
        for _ in range(rounds):
            # CPU time, not wall time: on a shared machine a wait for the CPU is not the code's cost.
            started = time.thread_time_ns()
            for _ in range(calls):
                record("auth.login_failed", attributes, state)
            results.append((time.thread_time_ns() - started) / calls)
        trail._stop = True
        trail.journal.close()
        return statistics.median(results)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def floor_ns(rounds: int, calls: int = 20000) -> float:
    """What the journal's promise costs at the least: a clock read and one ``os.write`` of a line."""
    directory = tempfile.mkdtemp(prefix="sigobs-bench-")
    try:
        fd = os.open(os.path.join(directory, "floor"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        line = b"x" * 400 + b"\n"
        results = []
        for _ in range(rounds):
            started = time.thread_time_ns()
            for _ in range(calls):
                time.time_ns()
                os.write(fd, line)
            results.append((time.thread_time_ns() - started) / calls)
        os.close(fd)
        return statistics.median(results)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def request_us(rounds: int, requests: int = 2000) -> tuple[float, float]:
    """A failed-login request (WSGI call, no network) with the audit on and off: microseconds each."""
    from werkzeug.test import EnvironBuilder

    from tests.audit_support import login_app

    directory = tempfile.mkdtemp(prefix="sigobs-bench-")
    results: dict[bool, list[float]] = {True: [], False: []}
    try:
        apps = {}
        for on in (True, False):
            app, _ = login_app(f"bench_{on}", SIGOBS_AUDIT=on, SIGOBS_LOG_FILE=os.path.join(directory, f"{on}.log"),
                               SIGOBS_AUDIT_URL="sqlite:///" + os.path.join(directory, "a.db"),
                               SIGOBS_AUDIT_JOURNAL=os.path.join(directory, "journal"), SIGOBS_AUDIT_MAX_FAILURES=0,
                               SIGOBS_AUDIT_FLUSH_INTERVAL=60)  # the writer does not run meanwhile: its CPU is not the request's
            apps[on] = app
        body = b"username=bob&password=nope"

        def environ() -> dict[str, Any]:
            return EnvironBuilder(path="/login", method="POST", data=body, headers={"User-Agent": "bench/1.0"},
                                  content_type="application/x-www-form-urlencoded").get_environ()

        def start_response(*_: Any) -> None:
            pass

        for _ in range(rounds):
            for on, app in apps.items():
                environs = [environ() for _ in range(requests)]
                started = time.thread_time_ns()  # this thread's CPU: the writer thread's is not the request's
                for env in environs:
                    for _ in app(env, start_response):
                        pass
                results[on].append((time.thread_time_ns() - started) / requests / 1000)
        return statistics.median(results[True]), statistics.median(results[False])
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--rows", type=int, default=50_000, help="rows per throughput round")
    parser.add_argument("--postgresql", metavar="URL", help="a PostgreSQL URL (default: a throwaway cluster)")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="sigobs-bench-")
    targets = [("SQLite", lambda: "sqlite:///" + os.path.join(directory, f"{time.monotonic_ns()}.db"), 20_000)]
    cluster = None
    if args.postgresql:
        targets.append(("PostgreSQL", lambda: args.postgresql, 10_000))
    else:
        from tests.audit_support import postgres_cluster, postgres_missing
        from tests.servers import free_port

        why = postgres_missing()
        if why is None:
            cluster = postgres_cluster(free_port())
            running = cluster.__enter__()
            targets.append(("PostgreSQL", lambda: running.url(), 10_000))
        else:
            print(f"PostgreSQL skipped: {why}")
    try:
        print(f"{'database':<12} {'trail rows/s':>14} {'driver rows/s':>14} {'trail/driver':>13} {'goal':>8}")
        for name, url_of, goal in targets:
            trail, driver = [], []
            for _ in range(args.rounds):
                trail.append(trail_rate(url_of(), args.rows))
                driver.append(driver_rate(url_of(), args.rows))
            t, d = statistics.median(trail), statistics.median(driver)
            print(f"{name:<12} {t:>14,.0f} {d:>14,.0f} {t / d:>13.2f} {goal:>8,} {'met' if t >= goal else 'MISSED'}")
        ns, floor = record_ns(args.rounds), floor_ns(args.rounds)
        print(f"\nrequest path: Trail.record of one auth event: {ns / 1000:.2f} us CPU (goal <= 5 us); "
              f"of which the floor, a clock read and one os.write: {floor / 1000:.2f} us")
        on, off = request_us(args.rounds)
        print(f"a failed-login request (WSGI, no network): audit on {on:.1f} us, off {off:.1f} us, "
              f"difference {on - off:.1f} us")
    finally:
        if cluster is not None:
            cluster.__exit__(None, None, None)
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
