"""The measurements behind the README's reliability figures, shared by the tests and
``benchmarks/reliability_report.py``.

Each function runs real servers on loopback and returns what it saw; the tests assert on it and
print it as ``FIGURE`` lines (``pytest -s``), the benchmark script prints them as a report.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .servers import (BlackHole, OtlpSink, ReceivedSpan, gunicorn, http_get, json_lines, percentile,
                      refused_endpoint, server_env)

FIGURES_FILE = os.environ.get("SIGOBS_FIGURES_FILE")


def figure(text: str) -> None:
    """A measured figure: printed (``pytest -s``) and collected by the benchmark script."""
    print(f"FIGURE: {text}")
    if FIGURES_FILE:
        with open(FIGURES_FILE, "a") as out:
            out.write(text + "\n")


# -- a broken collector -----------------------------------------------------------------------

COLLECTORS = ("working", "refused", "black hole", "slow")
SLOW_DELAY = 0.5  # seconds the slow collector takes to answer each export
QUEUE_SIZE = 256
DROP_REPORT = re.compile(r"flask-sigobs dropped (\d+) spans")
FAIL_REPORT = re.compile(r"flask-sigobs could not export (\d+) spans")
ABANDON_REPORT = re.compile(r"flask-sigobs gave up on (\d+) spans")


@dataclass
class CollectorRun:
    """One gunicorn (one worker) exporting to one kind of collector."""

    kind: str
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)  # /stats at a third, two thirds, the end
    exit_status: int | None = None
    exit_seconds: float = 0.0
    lines: list[dict[str, Any]] = field(default_factory=list)
    delivered: list[ReceivedSpan] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.statuses)

    def p(self, fraction: float) -> float:
        return percentile(self.latencies, fraction)

    def access_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == "flask.request_finished"]

    def reports(self, pattern: re.Pattern[str]) -> list[int]:
        """The counts our own logger reported, from the app's log file."""
        return [int(match.group(1)) for line in self.lines if line.get("logger") == "flask_sigobs"
                for match in [pattern.search(str(line.get("event", "")))] if match]


def broken_collectors(tmp_path: Path, rounds: int = 1000, warmup: int = 50) -> dict[str, CollectorRun]:
    """The same app under four gunicorns whose collector works, refuses, never answers, is slow.

    Requests go round-robin, one at a time, to the four servers, so a hiccup of the machine hits
    all four alike; each is timed from connect to the last byte. Then each server is stopped
    with SIGTERM, and its log and what its collector received are read back.
    """
    runs = {kind: CollectorRun(kind) for kind in COLLECTORS}
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(OtlpSink())
        slow = stack.enter_context(OtlpSink(delay=SLOW_DELAY))
        hole = stack.enter_context(BlackHole())
        endpoints = {"working": sink.endpoint, "refused": stack.enter_context(refused_endpoint()),
                     "black hole": hole.endpoint, "slow": slow.endpoint}
        servers = {}
        for kind, endpoint in endpoints.items():
            env = server_env(
                SIGOBS_LOG_FILE=str(tmp_path / f"{kind.replace(' ', '-')}.log"),
                SIGOBS_EXCLUDED_PATHS="/health,/stats",
                OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=endpoint,
                OTEL_BSP_MAX_QUEUE_SIZE=str(QUEUE_SIZE),
                OTEL_EXPORTER_OTLP_TRACES_TIMEOUT="5",  # seconds a black-holed export holds on
                OTEL_BSP_EXPORT_TIMEOUT="2000")  # what shutdown may spend on the last spans
            servers[kind] = stack.enter_context(gunicorn(tmp_path, env, workers=1))

        def stats() -> None:
            for kind, server in servers.items():
                runs[kind].stats.append(json.loads(http_get(f"{server.base}/stats")[2]))

        for _ in range(warmup):
            for kind, server in servers.items():
                runs[kind].statuses.append(http_get(f"{server.base}/")[0])
        for index in range(rounds):
            for kind, server in servers.items():
                started = time.perf_counter()
                status, _, _ = http_get(f"{server.base}/")
                runs[kind].latencies.append(time.perf_counter() - started)
                runs[kind].statuses.append(status)
            if index + 1 in (rounds // 3, 2 * rounds // 3):
                stats()
        stats()
        for kind, server in servers.items():
            started = time.perf_counter()
            runs[kind].exit_status = server.terminate()
            runs[kind].exit_seconds = time.perf_counter() - started
        for kind, run in runs.items():
            run.lines = json_lines((tmp_path / f"{kind.replace(' ', '-')}.log").read_bytes())
        runs["working"].delivered = sink.server_spans()
        runs["slow"].delivered = slow.server_spans()
    return runs


# -- load -------------------------------------------------------------------------------------

@dataclass
class LoadRun:
    sent: dict[str, int]  # request id -> the pid that served it (0: the server says none)
    statuses: list[int]
    raw_log: bytes
    seconds: float


def hammer(base: str, requests: int, threads: int, prefix: str, path: str = "/pid",
           headers: dict[str, str] | None = None) -> LoadRun:
    """``requests`` requests from ``threads`` threads, each with its own ``X-Request-ID``."""
    sent: dict[str, int] = {}
    statuses: list[int] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        request_id = f"{prefix}-{index:06d}"
        status, answer, body = http_get(f"{base}{path}", headers={**(headers or {}), "X-Request-ID": request_id})
        assert answer.get("x-request-id") == request_id
        pid = int(body) if path.startswith("/pid") and status == 200 else 0
        with lock:
            sent[request_id] = pid
            statuses.append(status)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(one, i) for i in range(requests)]:
            future.result()
    return LoadRun(sent, statuses, b"", time.perf_counter() - started)
