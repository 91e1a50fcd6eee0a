"""What the crash tests share: requests that remember who served them and when, and the check of
a log read after a kill against what each worker wrote, in order."""

from __future__ import annotations

import os
import signal
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .servers import Gunicorn, http_get, json_lines

#: The lines each route of ``tests.login_app`` writes, in order, and which of them is urgent
#: (written before the response): ``None`` when none is.
ROUTES = {
    "/login": (("login.attempt", "auth.login_failed", "flask.request_finished"), 1),
    "/login-ok": (("auth.login_succeeded", "flask.request_finished"), 0),
    "/work": (("work.done", "flask.request_finished"), None),
}


@dataclass
class Served:
    request_id: str
    route: str
    pid: int
    number: int  # the request's number in its worker: the order of its lines
    answered: float  # time.monotonic() when the whole response had arrived


def call(server: Gunicorn, route: str, request_id: str, query: str = "") -> Served:
    method = "GET" if route == "/work" else "POST"
    body = urllib.parse.urlencode({"username": "mallory", "password": "guess"}).encode() if method == "POST" else None
    status, answer, text = http_get(f"{server.base}{route}{query}", method=method, body=body,
                                    headers={"X-Request-ID": request_id,
                                             "Content-Type": "application/x-www-form-urlencoded"})
    assert status == (401 if route == "/login" else 200), (status, text)
    assert answer.get("x-request-id") == request_id
    pid, number = text.split()
    return Served(request_id, route, int(pid), int(number), time.monotonic())


def kill_group(server: Gunicorn) -> float:
    """SIGKILL to the master and every worker at once, as the OOM killer or a supervisor does;
    the moment of the kill (``time.monotonic()``)."""
    killed = time.monotonic()
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(10)
    return killed


@dataclass
class WorkerLog:
    pid: int
    expected: list[tuple[str, str]]  # (request id, event) in the order the worker wrote them
    present: list[tuple[str, str]]  # what the file holds of them, in the file's order
    last_urgent: int  # index in expected of the worker's last urgent line (-1: none)
    first_missing_answered: float | None  # when the request of the first missing line was answered


def worker_logs(log: Path, served: list[Served]) -> dict[int, WorkerLog]:
    """Each worker's lines as it wrote them (a sync worker serves one request at a time, so in
    the order it numbered them) beside what the file holds of them."""
    lines = json_lines(log.read_bytes()) if log.exists() else []
    ours = {s.request_id for s in served}
    found = [(line.get("request.id"), line.get("event")) for line in lines if line.get("request.id") in ours]
    assert len(found) == len(set(found)), "a line is in the file twice"
    logs = {}
    for pid in sorted({s.pid for s in served}):
        mine = sorted((s for s in served if s.pid == pid), key=lambda s: s.number)
        expected, answered, last_urgent = [], [], -1
        for s in mine:
            events, urgent = ROUTES[s.route]
            if urgent is not None:
                last_urgent = len(expected) + urgent
            expected += [(s.request_id, event) for event in events]
            answered += [s.answered] * len(events)
        ids = {s.request_id for s in mine}
        present = [pair for pair in found if pair[0] in ids]
        missing_at = len(present) if len(present) < len(expected) else None
        logs[pid] = WorkerLog(pid, expected, present, last_urgent,
                              answered[missing_at] if missing_at is not None else None)
    return logs


def assert_only_the_last_window_lost(logs: dict[int, WorkerLog], killed: float, window: float) -> None:
    """What a SIGKILL may take from each worker: lines after its last urgent one, and only those
    of requests answered within ``window`` seconds of the kill. What is there is in order."""
    for pid, worker in logs.items():
        assert worker.present == worker.expected[:len(worker.present)], \
            f"worker {pid}: the file holds its lines out of order, or with a gap"
        assert len(worker.present) > worker.last_urgent, \
            (f"worker {pid}: {len(worker.expected) - len(worker.present)} lines lost, among them urgent ones "
             f"(the first lost: {worker.expected[len(worker.present)]})")
        if worker.first_missing_answered is not None:
            age = killed - worker.first_missing_answered
            assert age < window, f"worker {pid}: a line of a request answered {age:.3f} s before the kill is lost"
