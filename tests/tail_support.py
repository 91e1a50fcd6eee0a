"""Helpers for the ``sigobs tail`` tests: the real command as a subprocess, real log files.

Real lines come from the example app under a real server (``examples/tour.py`` with
``SIGOBS_LOG_FILE``); generated lines, in the same shape, where a test needs lines the app
would not write (a 1 MB value, invalid UTF-8, thousands of interleaved requests).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from .e2e.stack import audit_place

ROOT = Path(__file__).resolve().parent.parent
_SCRIPT = Path(sys.executable).with_name("sigobs")
# the console script when installed beside this interpreter, else the module
SIGOBS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "flask_sigobs"]


def env(**extra: str) -> dict[str, str]:
    """A clean environment: UTC, no colour preferences inherited from the developer's shell."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("NO_COLOR", "FORCE_COLOR", "SIGOBS_JAEGER_URL", "TERM")}
    base.update(TZ="UTC", PYTHONIOENCODING="utf-8", **audit_place())  # a trail of its own (see audit_place)
    base.update(extra)
    return base


def tail(*args: str, stdin: bytes | None = None, timeout: float = 30, **env_extra: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``sigobs tail ARGS`` to completion."""
    return subprocess.run([*SIGOBS, "tail", *args], input=stdin, capture_output=True, timeout=timeout, cwd=ROOT,
                          env=env(**env_extra), check=False)


def text(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode("utf-8")


def write_tour_log(path: Path, level: str = "debug") -> list[dict[str, Any]]:
    """Run the example app's scripted tour under a real server, its log lines going to ``path``
    (appended); the lines it wrote."""
    before = path.stat().st_size if path.exists() else 0
    subprocess.run([sys.executable, str(ROOT / "examples" / "tour.py")], cwd=ROOT, check=True,
                   env=env(SIGOBS_LOG_FILE=str(path), SIGOBS_LOG_LEVEL=level),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    with open(path, "rb") as written:
        written.seek(before)
        return [json.loads(line) for line in written.read().splitlines()]


@pytest.fixture(scope="session")
def tour_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real log file written by the example app (debug level: every default signal)."""
    path = tmp_path_factory.mktemp("tour") / "app.jsonl"
    write_tour_log(path)
    return path


def event_line(event: str, *, level: str = "info", request: str | None = None, trace: str | None = None,
               timestamp: str = "2026-11-25T20:07:28.597122Z", **fields: Any) -> str:
    """One line in the shape flask-sigobs writes (keys with dots passed as ``a__b`` work too)."""
    record: dict[str, Any] = {"timestamp": timestamp, "level": level, "event": event,
                              "service.name": "generated"}
    if trace:
        record.update({"trace_id": trace, "span_id": trace[:16]})
    if request:
        record["request.id"] = request
    record.update({k.replace("__", "."): v for k, v in fields.items()})
    return json.dumps(record)


class Follower:
    """A ``sigobs tail -f`` subprocess whose output is read line by line in the background."""

    def __init__(self, *args: str, **env_extra: str) -> None:
        self.process = subprocess.Popen([*SIGOBS, "tail", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env(**env_extra), cwd=ROOT)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.errors: list[str] = []
        threading.Thread(target=self._pump, args=(self.process.stdout, self.lines), daemon=True).start()
        self._err: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.process.stderr, self._err), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, sink: queue.Queue[str]) -> None:
        for raw in iter(stream.readline, b""):
            sink.put(raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 10.0) -> str:
        """The first new line of output for which ``predicate`` holds (fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                continue
            self.seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no such line within {timeout}s; output so far: {self.seen!r}; "
                             f"stderr: {self.stderr()!r}")

    def stderr(self) -> list[str]:
        while True:
            try:
                self.errors.append(self._err.get_nowait())
            except queue.Empty:
                return self.errors

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def tail_sink(shown: Any, *, by_request: bool = True, parallel: bool = False) -> Any:
    """The sink of ``sigobs tail [--by-request] --color=never`` in UTC, writing to ``shown``,
    built in this process (to be interrupted at a chosen line, see :func:`run_interrupted`)."""
    import io

    from flask_sigobs.tail.clock import Clock
    from flask_sigobs.tail.filters import FilterSet
    from flask_sigobs.tail.output import Output
    from flask_sigobs.tail.render import Renderer
    from flask_sigobs.tail.requestsink import RequestSink
    from flask_sigobs.tail.sinks import LineSink
    from flask_sigobs.tail.terminal import Palette

    out, renderer = Output(shown, io.BytesIO()), Renderer(Palette(False), Clock(utc=True))
    if not by_request:
        return LineSink(out, renderer, FilterSet(), json=False, hide_raw=False, parallel=parallel)
    return RequestSink(out, renderer, FilterSet(), json=False, hide_raw=False, errors_only=False, blocks=True,
                       timeout=30.0, max_open=10_000, parallel=parallel)


def run_interrupted(work: Callable[[], None], files: set[str], at: int | None) -> tuple[bool, int]:
    """Run ``work`` with a KeyboardInterrupt raised at the ``at``-th line it runs in ``files`` (in
    this process, not in forked workers), as Ctrl-C could strike there: (interrupted, the lines
    run there). With ``at`` None, the count of a whole run, to choose the lines to strike at."""
    parent = os.getpid()
    steps = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal steps
        if os.getpid() != parent or frame.f_code.co_filename not in files:
            return None
        if event == "line":
            steps += 1
            if steps == at:
                raise KeyboardInterrupt
        return tracer

    sys.settrace(tracer)
    try:
        work()
    except KeyboardInterrupt:
        return True, steps
    finally:
        sys.settrace(None)
    return False, steps
