"""Untouched Flask apps under a launcher and a real server, sending to a real OTLP receiver.

The receiver is Jaeger v2 behind the repo's Collector config, started with the end-to-end test's
helpers (``tests/e2e/stack.py``) on free loopback ports. An app runs under ``sigobs run`` or
``opentelemetry-instrument``, under gunicorn (``-w 2``, with or without ``--preload``), Flask's
``flask run`` or ``python app.py``; every process is in its own process group, killed on the way
out whatever happened. :func:`check_requests` then reads back the app's JSON lines and what
Jaeger returns, and finds each request there, once, with its events, route and status.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from .e2e.stack import (GUNICORN_CONFIG, ROOT, Process, Stack, StackError, _gunicorn_has_setting, clean_environ, find_jaeger,
                        http_request, running_stack, stopped_after, wait_for)
from .extras import NO_OTEL
from .test_end_to_end_jaeger import events, events_named, request_ids, server_spans, tags  # noqa: F401 (re-exported)

BIN = Path(sys.executable).parent


class _Launchers(dict):  # type: ignore[type-arg]
    """``opentelemetry-instrument`` comes with opentelemetry-instrumentation (the [otel] extra): a test
    that launches with it skips, saying why, on the matrix row without it."""

    def __getitem__(self, name: str) -> list[str]:
        if name == "opentelemetry-instrument" and NO_OTEL:
            pytest.skip(NO_OTEL)
        return super().__getitem__(name)


LAUNCHERS = _Launchers({
    "sigobs-run": [sys.executable, "-m", "flask_sigobs", "run", "--"],
    "opentelemetry-instrument": [str(BIN / "opentelemetry-instrument")],
})
TRACES_TIMEOUT = 30.0


# -- the receiver -----------------------------------------------------------------------------

@contextlib.contextmanager
def otlp_receiver(workdir: Path) -> Iterator[Stack]:
    """Jaeger and the Collector (OTLP/gRPC and OTLP/HTTP in), ready; stopped on the way out."""
    jaeger, why_not = find_jaeger()
    if jaeger is None:
        pytest.skip(why_not)
    with running_stack(jaeger, workdir, with_app=False) as stack:
        yield stack


# -- the app under a launcher -----------------------------------------------------------------

def run_id() -> str:
    return "-" + uuid.uuid4().hex[:8]


def app_environ(receiver: Stack, app: Stack, **extra: str) -> dict[str, str]:
    """What a deployment would set: the endpoint, the log file; nothing in the app's code."""
    return clean_environ(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.collector_http}",
                         OTEL_BSP_SCHEDULE_DELAY="200", SIGOBS_LOG_FILE=str(app.app_log),
                         PYTHONUNBUFFERED="1", **extra)


def start(app: Stack, name: str, args: list[str], env: dict[str, str], cwd: Path) -> Process:
    """A process of ``app`` (stopped by ``app.stop()``, its whole group), started in ``cwd``."""
    process = Process(name, args, env, app.workdir / f"{name}-{app.app_port}.log", cwd=cwd)
    app.processes.append(process)  # before starting: stopped whatever happens next
    process.start()
    return process


@contextlib.contextmanager
def gunicorn(receiver: Stack, workdir: Path, launcher: str, target: str, *, preload: bool = False,
             workers: int = 2, cwd: Path = ROOT, **env: str) -> Iterator[Stack]:
    """``LAUNCHER gunicorn -w 2 [--preload] TARGET``: its own :class:`Stack` for the app's port and logs."""
    app = Stack(receiver.jaeger_binary, workdir, workers=workers, preload=preload)
    args = [*LAUNCHERS[launcher], sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG),
            "-w", str(workers), "-b", f"127.0.0.1:{app.app_port}", "--graceful-timeout", "15",
            "--access-logfile", str(app.access_log),
            "--access-logformat", "%(p)s %({x-request-id}o)s %(m)s %(U)s %(s)s"]
    if preload:
        args.append("--preload")
    if _gunicorn_has_setting("control_socket_disable"):
        args.append("--no-control-socket")
    args.append(target)
    with stopped_after(app, target):
        process = start(app, "gunicorn", args, app_environ(receiver, app, **env), cwd)

        def workers_ready() -> bool:
            return process.output(tail=1000).count("sigobs-e2e: worker") >= workers

        wait_for(f"{workers} gunicorn workers of {target}", workers_ready, 30, alive=process.check_alive)
        yield app


@contextlib.contextmanager
def single_process(receiver: Stack, workdir: Path, launcher: str, command: list[str], **env: str) -> Iterator[Stack]:
    """``LAUNCHER COMMAND`` serving on the app :class:`Stack`'s port (``{port}`` in the command)."""
    app = Stack(receiver.jaeger_binary, workdir, workers=1)
    args = [*LAUNCHERS[launcher], *[part.format(port=app.app_port) for part in command]]
    with stopped_after(app, " ".join(command)):
        process = start(app, command[0].rsplit("/", 1)[-1], args, app_environ(receiver, app, **env), ROOT)

        def answers() -> bool:
            status, _, _ = http_request(app.app_url + "/health", timeout=2)
            return status == 200

        wait_for(" ".join(command), answers, 30, alive=process.check_alive)
        yield app


# -- requests and what became of them --------------------------------------------------------

@dataclass
class Sent:
    service: str
    method: str
    path: str
    route: str | None
    status: int
    request_id: str


def send(app: Stack, service: str, path: str, route: str | None, status: int, *, method: str = "GET",
         headers: dict[str, str] | None = None, prefix: str = "") -> Sent:
    """One request with a known request id; its status must be the expected one."""
    request_id = f"t{uuid.uuid4().hex[:20]}"
    got, response_headers, _ = http_request(app.app_url + prefix + path, method=method,
                                            headers={"X-Request-ID": request_id, "User-Agent": "sigobs-attach/1.0",
                                                     **(headers or {})})
    assert got == status, f"{method} {prefix}{path}: {got}, expected {status}"
    assert response_headers.get("X-Request-ID") == request_id, \
        f"{method} {prefix}{path}: no X-Request-ID echoed, so flask-sigobs is not attached ({response_headers})"
    return Sent(service, method, path, route, status, request_id)


def on_every_worker(app: Stack, service: str, path: str, route: str) -> list[Sent]:
    """The same request once on each gunicorn worker (see ``Stack.request_on_every_worker``)."""
    sent = []
    for status, headers in app.request_on_every_worker(path):
        request_id = headers.get("X-Request-ID")
        assert request_id, f"GET {path} -> {status} without X-Request-ID"
        sent.append(Sent(service, "GET", path, route, status, request_id))
    def served_by() -> set[int | None]:  # gunicorn writes its access line just after the response
        by_worker = app.worker_of_request()
        pids = {by_worker.get(s.request_id) for s in sent}
        return pids if None not in pids else set()

    with contextlib.suppress(StackError):
        wait_for("the access log lines", served_by, 5, interval=0.05)
    pids = {app.worker_of_request().get(s.request_id) for s in sent}
    assert None not in pids and len(pids) == app.workers, f"served by {pids}"
    return sent


def stop_and_read(app: Stack, receiver: Stack, sent: list[Sent], since_us: int, *,
                  interrupt: bool = False) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Stop the app gracefully (its last spans are flushed), then its lines and every service's traces.

    gunicorn stops gracefully on SIGTERM; a development server (``flask run``, ``app.run()``) on
    Ctrl-C (``interrupt``): Python's default SIGTERM ends it without running its exit handlers.
    """
    for process in app.processes:
        if interrupt and process.popen is not None and process.popen.poll() is None:
            process.signal_group(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(15)
        process.stop()
    lines = app.log_lines()
    wanted = {s.request_id for s in sent}
    services = sorted({s.service for s in sent})
    traces: dict[str, list[dict[str, Any]]] = {}

    def all_there() -> bool:
        found: set[str] = set()
        for service in services:
            traces[service] = receiver.query.search(service, since_us)
            for trace in traces[service]:
                found |= request_ids(trace)
        return wanted <= found

    with contextlib.suppress(StackError):  # the checks say what is missing
        wait_for(f"{len(wanted)} traces in Jaeger", all_there, TRACES_TIMEOUT, interval=0.3)
    return lines, traces


def status_tag(span: dict[str, Any]) -> Any:
    span_tags = tags(span)
    return span_tags.get("http.response.status_code", span_tags.get("http.status_code"))


def check_requests(lines: list[dict[str, Any]], traces: dict[str, list[dict[str, Any]]], sent: list[Sent]) -> None:
    """Each request: one access line (route, status, service) and one trace whose one server span
    carries one set of its events, with the ids of the line."""
    problems = []
    for s in sent:
        what = f"{s.method} {s.path} ({s.service}, {s.request_id})"
        access = [line for line in lines
                  if line.get("event") == "flask.request_finished" and line.get("request.id") == s.request_id]
        if len(access) != 1:
            problems.append(f"{what}: {len(access)} access lines")
            continue
        line = access[0]
        if line["service.name"] != s.service or line["http.response.status_code"] != s.status \
                or (s.route is not None and line.get("http.route") != s.route):
            problems.append(f"{what}: access line {line}")
        found = [trace for trace in traces.get(s.service, []) if s.request_id in request_ids(trace)]
        if len(found) != 1:
            problems.append(f"{what}: {len(found)} traces in Jaeger")
            continue
        spans = server_spans(found[0])
        if len(spans) != 1:
            problems.append(f"{what}: {len(spans)} server spans")
            continue
        span = spans[0]
        names = [event["event"] for event in events(span)]
        if names.count("flask.request_started") != 1 or names.count("flask.request_finished") != 1:
            problems.append(f"{what}: span events {names}")
        if {event.get("request.id") for event in events(span) if event["event"].startswith("flask.")} != {s.request_id}:
            problems.append(f"{what}: events of other requests on its span")
        if status_tag(span) != s.status:
            problems.append(f"{what}: span status code {status_tag(span)}")
        if s.status >= 500 and tags(span).get("otel.status_code") != "ERROR":
            problems.append(f"{what}: a {s.status} whose span is not an error")
        if found[0]["traceID"].rjust(32, "0") != line["trace_id"] or span["spanID"].rjust(16, "0") != line["span_id"]:
            problems.append(f"{what}: the line's trace_id/span_id are not Jaeger's")
        if s.route is not None and s.route not in span["operationName"]:
            problems.append(f"{what}: span named {span['operationName']!r}")
    assert not problems, "\n".join(problems)


def since_now() -> int:
    return int(time.time() * 1e6) - 5_000_000


# -- a third-party example app, untouched ----------------------------------------------------

FLASGGER_SDIST = "flasgger-0.9.7.1.tar.gz"
FLASGGER_SHA256 = "ca098e10bfbb12f047acc6299cc70a33851943a746e550d86e65e60d4df245fb"


def flasgger_examples() -> Path:
    """The ``examples`` package of Flasgger's source distribution on PyPI, as published (cached).

    The wheel ships the library only; its example apps are in the sdist, which pip downloads once
    (checked against its SHA-256) into ``${SIGOBS_CACHE:-~/.cache/flask-sigobs}``.
    """
    cache = Path(os.environ.get("SIGOBS_CACHE") or Path.home() / ".cache" / "flask-sigobs")
    target = cache / "flasgger-0.9.7.1-examples"
    if (target / "examples" / "colors.py").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                                 "-d", tmp, "flasgger==0.9.7.1"], capture_output=True, text=True, timeout=300)
        sdist = Path(tmp) / FLASGGER_SDIST
        if result.returncode != 0 or not sdist.is_file():
            pytest.skip(f"could not download Flasgger's sdist from PyPI: {result.stderr[-500:]}")
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        assert digest == FLASGGER_SHA256, f"{FLASGGER_SDIST} has SHA-256 {digest}, not the published one"
        staging = Path(tmp) / "out"
        with tarfile.open(sdist) as archive:
            for name in ("examples/__init__.py", "examples/colors.py"):
                member = archive.getmember(f"flasgger-0.9.7.1/{name}")
                data = archive.extractfile(member).read()  # type: ignore[union-attr]
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                (staging / name).write_bytes(data)
        with contextlib.suppress(OSError):  # another run may have won the race: same content
            staging.rename(target)
    if not (target / "examples" / "colors.py").is_file():
        shutil.rmtree(target, ignore_errors=True)
        raise AssertionError(f"could not unpack Flasgger's examples into {target}")
    return target

