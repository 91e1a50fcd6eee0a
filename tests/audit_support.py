"""What the audit tests share: an app with a login that checks the lockout, the ``sigobs audit``
command run in-process, a generated trail of a million rows, and a throwaway PostgreSQL cluster."""

from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from flask import Flask, current_app, request

from flask_sigobs import SigObs, audit, auth
from flask_sigobs.audit.chain import Chainer
from flask_sigobs.audit.rows import iso_time
from flask_sigobs.audit.store import COLUMNS, INSERT, client_key, connect
from flask_sigobs.cli import main

USERS = {"alice": "wonderland", "bob": "builder"}


def login_app(name: str = "audit_app", **config: Any) -> tuple[Flask, SigObs]:
    """An app with the login every audit test needs: it asks ``audit.check`` first (429 and
    Retry-After when locked), then says why a login failed, as a careful app does."""
    app = Flask(name)
    app.config["SECRET_KEY"] = "audit-test-secret"
    if "SIGOBS_AUDIT_FLUSH_INTERVAL" not in os.environ:
        app.config["SIGOBS_AUDIT_FLUSH_INTERVAL"] = 0.05
    app.config.update(config)

    @app.post("/login")
    def login():
        user = request.form.get("username", "")
        lock = audit.check(user=user)
        if lock:
            return "too many attempts", 429, {"Retry-After": str(lock.retry_after)}
        sender = current_app._get_current_object()
        if user not in USERS:
            auth.login_failed.send(sender, user=user, reason="no such user", password=request.form.get("password"))
            return "no", 401
        if USERS[user] != request.form.get("password"):
            auth.login_failed.send(sender, user=user, reason="bad password", password=request.form.get("password"))
            return "no", 401
        auth.login_succeeded.send(sender, user=user, method="password")
        return "welcome"

    @app.post("/logout")
    def logout():
        auth.logged_out.send(current_app._get_current_object(), user=request.form.get("username"))
        return "bye"

    @app.get("/admin")
    def admin():
        auth.access_denied.send(current_app._get_current_object(), user="alice", permission="admin")
        return "no", 403

    @app.post("/hostile")
    def hostile():  # the raw body is the user name, as is (invalid UTF-8 as Python keeps it)
        name = request.get_data().decode("utf-8", "surrogateescape")
        auth.login_failed.send(current_app._get_current_object(), user=name, reason="bad password",
                               note=request.headers.get("X-Note", ""))
        return "no", 401

    @app.get("/health")
    def health():
        return "ok"

    return app, SigObs(app)


def cli(*args: str) -> tuple[int, str, str]:
    """``sigobs <args>`` in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


def generate(url: str, count: int, seed: int = 7, key: bytes | None = None, chained: bool = False,
             span_s: int = 30 * 86400) -> None:
    """A trail of ``count`` rows over the last ``span_s`` seconds: 5,000 users, 20,000 addresses,
    a third of the logins failing. ``chained``: real hashes (slower), else placeholders."""
    rng = random.Random(seed)
    store = connect(url)
    chainer = Chainer(key)
    now = int(time.time() * 1_000_000)
    start = now - span_s * 1_000_000
    step = max((now - start) // count, 1)
    events = ["auth.login_failed", "auth.login_succeeded", "auth.logged_out", "auth.access_denied"]
    previous, batch = "", []
    reasons = ["bad_password", "unknown_user", "mfa_failed", "locked"]
    for seq in range(1, count + 1):
        event = events[min(int(rng.random() * 5), 3) if rng.random() > 0.33 else 0]
        outcome = "failure" if event in ("auth.login_failed", "auth.access_denied") else "success"
        address = f"10.{rng.randrange(80)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        row = {"time": iso_time(start + seq * step), "event": event, "outcome": outcome,
               "reason": rng.choice(reasons) if event == "auth.login_failed" else
               ("not_permitted" if outcome == "failure" else None),
               "reason_text": None, "enduser_id": f"user{rng.randrange(5000)}", "client_address": address,
               "user_agent": "bench/1.0", "http_route": "/login", "request_id": "%032x" % rng.getrandbits(128),
               "trace_id": "%032x" % rng.getrandbits(128), "span_id": "%016x" % rng.getrandbits(64),
               "service_name": "bench", "session_hash": None, "data": None}
        row["client_key"] = client_key(address)
        row["writer"], row["seq"] = "generator~1~00000000", seq
        previous = chainer.row_hash(previous, row["writer"], seq, tuple(row[c] for c in COLUMNS)) if chained else "0" * 64
        row["hash"] = previous
        batch.append(row)
        if len(batch) == 50_000 or seq == count:
            with store.transaction():
                store.executemany(INSERT, batch)
                store.execute("INSERT INTO sigobs_audit_writer (writer, seq, hash, time) VALUES (:w, :s, :h, :t) "
                              "ON CONFLICT (writer) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                              {"w": row["writer"], "s": seq, "h": previous, "t": row["time"]})
            batch = []
    store.close()


# -- PostgreSQL ------------------------------------------------------------------------------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def postgres_missing() -> str | None:
    """Why a PostgreSQL cluster cannot be had here, or None (scripts/install-postgres installs it)."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL 15 in {PG_BIN}: run scripts/install-postgres"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb refuses root"
    try:
        import psycopg  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed: pip install 'flask-sigobs[postgresql]'"
    return None


class PostgresCluster:
    """A throwaway cluster on 127.0.0.1:``port``: trust auth, loopback only, run as the ``postgres``
    user when we are root (initdb refuses root). ``fsync=off``, which a killed server survives (only
    the machine could lose what it wrote); not ``synchronous_commit=off``, with which a commit it
    acknowledged dies with it. ``stop`` and ``start`` are the database going down and coming back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="sigobs-pg-"))
        self.data, self.sockets = self.root / "data", self.root / "sockets"
        self.sockets.mkdir()
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sockets, "postgres")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*self.as_postgres, str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
                        "-U", "postgres", "--no-sync"], check=True, capture_output=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        subprocess.run([*self.as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                        str(self.root / "log"), "-o", f"-p {self.port} -k {self.sockets} "
                        "-c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run([*self.as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                        "-w", "stop"], capture_output=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_cluster(port: int) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(port)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
