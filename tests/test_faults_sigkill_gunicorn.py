"""Killed with SIGKILL under gunicorn: what the log file holds afterwards, with default settings.

The OOM killer and supervisors kill the whole server at once, without a word to it. A failed
login is exactly what someone able to crash a worker would like to erase, so every ``warning``
line and every authentication event, with every line before it, is written before its response
leaves; what a kill may still take is the info lines of the last ``SIGOBS_LOG_FLUSH_INTERVAL``
(0.1 s) after the last of those. Real gunicorn (sync workers), one real file.
"""

from __future__ import annotations

import threading
import time
import urllib.parse

import pytest

from .crash_support import assert_only_the_last_window_lost, call, kill_group, worker_logs
from .reliability import figure
from .servers import gunicorn, http_get, json_lines, server_env

FAILED_LOGINS = 30
FLUSH_INTERVAL = 0.1  # the default, stated in docs/events.md
SLACK = 0.2  # a busy worker (and this shared machine) may run the flush thread late by this much


def test_failed_logins_of_the_example_app_survive_sigkill_of_the_server(tmp_path):
    """The issue's measurement, as a user meets it: the example app, ``gunicorn -w 2``, default
    settings but ``SIGOBS_LOG_FILE``; 30 failed logins, then SIGKILL right after the last answer."""
    log = tmp_path / "app.log"
    env = server_env(SIGOBS_LOG_FILE=str(log))
    with gunicorn(tmp_path, env, workers=2, app="tests.example_served:app") as server:
        form = urllib.parse.urlencode({"username": "alice", "password": "not-her-password"}).encode()
        for index in range(FAILED_LOGINS):
            status, answer, _ = http_get(f"{server.base}/login", method="POST", body=form,
                                         headers={"X-Request-ID": f"login-{index:03d}",
                                                  "Content-Type": "application/x-www-form-urlencoded"})
            assert status == 401 and answer["x-request-id"] == f"login-{index:03d}"
        kill_group(server)
    lines = json_lines(log.read_bytes()) if log.exists() else []
    by_request: dict[str, list[str]] = {}
    for line in lines:
        by_request.setdefault(line.get("request.id"), []).append(line["event"])
    failed = [rid for rid, events in by_request.items() if "auth.login_failed" in events]
    figure(f"SIGKILL after {FAILED_LOGINS} failed logins (example app, gunicorn -w 2): "
           f"{len(failed)} auth.login_failed lines and {len(lines)} lines in all in the file")
    assert len(failed) == FAILED_LOGINS, f"only {len(failed)} of {FAILED_LOGINS} failed logins were written"
    # Each request writes the same lines (auth.login_failed, flask.message_flashed, Flask-Login's
    # auth.session_protected, the access line): what may wait is what follows its last auth line.
    complete = max((events for rid, events in by_request.items() if rid), key=len)
    must = max(i for i, event in enumerate(complete) if event.startswith("auth.")) + 1
    short = {rid: events for rid, events in by_request.items() if rid and events != complete}
    for events in short.values():
        assert events == complete[:len(events)] and len(events) >= must, events
    assert len(short) <= 2, f"lines lost for more requests than there are workers: {short}"


@pytest.mark.parametrize("clients", [1, 2], ids=["one-client", "two-workers-at-once"])
def test_sigkill_after_a_burst_of_failed_logins_loses_no_warning_nor_what_came_before(tmp_path, clients):
    """Each failed login writes ``login.attempt`` (info), ``auth.login_failed`` (warning) and its
    access line (info). After SIGKILL, each worker's lines are in the file in order through its
    last warning: at most its last access line is missing."""
    log = tmp_path / "app.log"
    served = []
    with gunicorn(tmp_path, server_env(SIGOBS_LOG_FILE=str(log)), workers=2, app="tests.login_app:app") as server:
        def client(number: int) -> None:
            for index in range(number, FAILED_LOGINS, clients):
                served.append(call(server, "/login", f"burst-{index:03d}", "?sleep=0.005" if clients > 1 else ""))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        killed = kill_group(server)
    logs = worker_logs(log, served)
    lost = sum(len(w.expected) - len(w.present) for w in logs.values())
    figure(f"SIGKILL after {FAILED_LOGINS} failed logins (gunicorn -w 2, {clients} client(s), workers "
           f"{sorted(len([s for s in served if s.pid == pid]) for pid in logs)} requests): "
           f"{sum(len(w.present) for w in logs.values())} of {sum(len(w.expected) for w in logs.values())} "
           f"lines in the file, {lost} lost")
    if clients > 1:
        assert len(logs) == 2, "both workers wrote into the one file"
    assert_only_the_last_window_lost(logs, killed, FLUSH_INTERVAL + SLACK)
    for worker in logs.values():
        assert len(worker.expected) - len(worker.present) <= 1, "more than the last access line is lost"


def test_sigkill_under_load_loses_only_info_lines_of_the_last_window(tmp_path):
    """SIGKILL in the middle of traffic. One client keeps both workers busy with requests whose
    lines may wait (``/work``: two info lines) until the kill; another sends those and successful
    logins (an authentication event at info, which may not wait) for two seconds, then only
    ``/work`` for half a second, then one last login, and the server is killed as its answer
    arrives. No line of a request answered longer than the window before the kill is lost, nor
    any authentication event: the last login's included."""
    log = tmp_path / "app.log"
    served = []
    killing = threading.Event()
    with gunicorn(tmp_path, server_env(SIGOBS_LOG_FILE=str(log)), workers=2, app="tests.login_app:app") as server:
        def background() -> None:
            index = 0
            while not killing.is_set():
                try:
                    answer = call(server, "/work", f"steady-{index:05d}")
                except Exception:  # the request the kill cut short
                    assert killing.is_set()
                    return
                served.append(answer)
                index += 1

        steady = threading.Thread(target=background)
        steady.start()
        started, index = time.monotonic(), 0
        while time.monotonic() - started < 2.5:
            mixed = time.monotonic() - started < 2.0
            route = "/login-ok" if mixed and index % 4 == 3 else "/work"
            served.append(call(server, route, f"load-{index:05d}"))
            index += 1
        served.append(call(server, "/login-ok", "load-last"))
        killing.set()
        killed = kill_group(server)
        steady.join(10)
    logs = worker_logs(log, served)
    lost = {pid: len(w.expected) - len(w.present) for pid, w in logs.items()}
    oldest = max((killed - w.first_missing_answered for w in logs.values()
                  if w.first_missing_answered is not None), default=0.0)
    figure(f"SIGKILL under load (gunicorn -w 2, {len(served)} requests in 2.5 s): lines lost per worker "
           f"{sorted(lost.values())}, the oldest lost line's request answered {oldest * 1000:.1f} ms before the kill")
    assert_only_the_last_window_lost(logs, killed, FLUSH_INTERVAL + SLACK)
