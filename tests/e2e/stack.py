"""The real parts of the end-to-end test: Jaeger, the Collector and the example app under gunicorn.

Each part is a child process in its own process group, on free loopback ports, with its output
in a file (shown when something goes wrong). :class:`Stack` starts them in order (Jaeger, then
the Collector that exports to it, then the app that sends to the Collector), waits until each is
ready, and stops them all, killing their whole process groups, whatever happened in between.

Every wait is bounded: a part that does not come up fails the test with its log, never hangs it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR_CONFIG = ROOT / "otel-collector.yaml"  # the repo's own, unchanged
JAEGER_CONFIG = ROOT / "deploy" / "jaeger.yaml"  # the repo's own, unchanged
GUNICORN_CONFIG = Path(__file__).resolve().parent / "gunicorn_conf.py"
JAEGER_VERSION = "v1.76.0"  # what scripts/build-jaeger builds by default
VICTORIALOGS_VERSION = "v1.52.2"  # what scripts/build-victorialogs builds by default

START_TIMEOUT = 30.0  # seconds for one part to become ready
STOP_TIMEOUT = 20.0  # seconds for one part to stop after SIGTERM, before SIGKILL
HTTP_TIMEOUT = 10.0

T = TypeVar("T")


def _libc_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl  # looked up now, not in the forked child
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the test process dies, even by SIGKILL."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


class StackError(AssertionError):
    """A part of the stack did not behave (the parts' recent output goes to stderr, see below)."""


def find_jaeger() -> tuple[str | None, str]:
    """The Jaeger v2 binary to use, or None and why not.

    ``SIGOBS_JAEGER`` (exported by ``scripts/test`` after ``scripts/build-jaeger``) wins, and must
    exist; otherwise the build's cache location, then ``jaeger`` on the PATH.
    """
    explicit = os.environ.get("SIGOBS_JAEGER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise StackError(f"SIGOBS_JAEGER={explicit!r} is not an executable file")
        return explicit, ""
    cache = Path(os.environ.get("SIGOBS_CACHE") or Path.home() / ".cache" / "flask-sigobs")
    cached = cache / f"jaeger-{JAEGER_VERSION}"
    if os.access(cached, os.X_OK):
        return str(cached), ""
    import shutil

    on_path = shutil.which("jaeger")
    if on_path:
        return on_path, ""
    return None, (f"no Jaeger v2 binary: run ./scripts/test (it builds one with scripts/build-jaeger "
                  f"into {cache}), or set SIGOBS_JAEGER")


def find_prometheus() -> tuple[str | None, str]:
    """A Prometheus server binary (``SIGOBS_PROMETHEUS``, else on the PATH), or None and why not."""
    import shutil

    found = os.environ.get("SIGOBS_PROMETHEUS") or shutil.which("prometheus")
    if found and os.access(found, os.X_OK):
        return found, ""
    return None, "no prometheus: run ./scripts/test (scripts/install-prometheus installs Debian's), or set SIGOBS_PROMETHEUS"


def find_victorialogs() -> tuple[str | None, str]:
    """The VictoriaLogs binary (``SIGOBS_VICTORIALOGS``, else the build's cache location)."""
    explicit = os.environ.get("SIGOBS_VICTORIALOGS")
    cache = Path(os.environ.get("SIGOBS_CACHE") or Path.home() / ".cache" / "flask-sigobs")
    found = explicit or str(cache / f"victoria-logs-{VICTORIALOGS_VERSION}")
    if os.access(found, os.X_OK):
        return found, ""
    return None, (f"no VictoriaLogs binary at {found}: run ./scripts/test (scripts/build-victorialogs builds "
                  f"it with Go), or set SIGOBS_VICTORIALOGS")


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open together while choosing)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def audit_place() -> dict[str, str]:
    """A fresh folder for an app's audit trail (``SIGOBS_AUDIT_URL``, ``SIGOBS_AUDIT_JOURNAL``).

    The trail is on by default, in the app's instance folder: every test app would write into the
    checkout, and its brute-force counts (failed logins per user and address, from the shared
    database) would carry over from one test's logins to the next one's, until a tour's login is
    locked out. Each app a test starts gets a trail of its own instead, unless it names one."""
    folder = tempfile.mkdtemp(prefix="sigobs-audit-")
    return {"SIGOBS_AUDIT_URL": f"sqlite:///{folder}/audit.db", "SIGOBS_AUDIT_JOURNAL": f"{folder}/journal"}


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without any ``OTEL_*`` or ``SIGOBS_*`` variable, plus ``extra``
    (and a fresh audit trail's place: :func:`audit_place`).

    Jaeger and the Collector are OpenTelemetry SDK users themselves: given the app's ``OTEL_*``
    variables they would trace themselves into the results.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SIGOBS_"))}
    env.update(audit_place())
    env.update(extra)
    return env


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.2,
             alive: Callable[[], None] | None = None) -> T:
    """Call ``probe`` until it returns something other than None (or falsy), within ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        if alive is not None:
            alive()
        try:
            result = probe()
            if result:
                return result
        except Exception as exc:  # not ready yet: remembered for the message
            last_error = exc
        if time.monotonic() >= deadline:
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}"
                             + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval)


def http_request(url: str, method: str = "GET", data: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout: float = HTTP_TIMEOUT,
                 context: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request, no redirect followed; (status, headers, body) whatever the status.
    ``context``: the TLS settings of an ``https://`` request (the CA it trusts)."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    handlers: list[Any] = [NoRedirect]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def accepts_an_empty_export(url: str, headers: dict[str, str] | None = None,
                            context: ssl.SSLContext | None = None) -> bool:
    """Whether an OTLP/HTTP receiver takes an empty export request: a Collector does once its
    pipeline runs. Raises while nothing listens yet (``wait_for`` waits on)."""
    status, _, _ = http_request(url, "POST", b"{}", {"Content-Type": "application/json", **(headers or {})},
                                timeout=2, context=context)
    return status == 200


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Each request the test makes is one request: a redirect is a response, not a second request."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Process:
    """A child process in its own process group, its output in ``log``."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    cwd: Path = ROOT
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "wb") as out:
            self.popen = subprocess.Popen(self.args, env=self.env, cwd=self.cwd, stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True, preexec_fn=_die_with_parent)

    def output(self, tail: int = 60) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no output)"
        return "\n".join(lines[-tail:])

    def check_alive(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            code = None if self.popen is None else self.popen.returncode
            raise StackError(f"{self.name} exited (code {code}); its output:\n{self.output()}")

    def signal_group(self, signum: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)  # start_new_session: the group id is the pid

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM to the whole group, then SIGKILL if it lingers; returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)  # stragglers in the group (gunicorn workers), if any
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover - the kernel would have to refuse
            pass
        return self.popen.returncode


@dataclass
class JaegerQuery:
    """Jaeger's HTTP query API; every body it returns is kept, for the secrets check."""

    base: str
    bodies: list[bytes] = field(default_factory=list)

    def get(self, path: str, **params: Any) -> Any:
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        status, _, body = http_request(url)
        self.bodies.append(body)
        if status == 404:
            return None
        if status != 200:
            raise StackError(f"GET {url} -> {status}: {body[:500]!r}")
        return json.loads(body)

    def services(self) -> list[str]:
        return (self.get("/api/services") or {}).get("data") or []

    def search(self, service: str, since_us: int, limit: int = 1000) -> list[dict[str, Any]]:
        now_us = int(time.time() * 1e6)
        found = self.get("/api/traces", service=service, start=since_us, end=now_us + 60_000_000,
                         limit=limit)
        return (found or {}).get("data") or []

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        found = self.get(f"/api/traces/{trace_id}")
        data = (found or {}).get("data") or []
        return data[0] if data else None

    def trace_v3(self, trace_id: str) -> Any:
        return self.get(f"/api/v3/traces/{trace_id}")


@dataclass
class Stack:
    """Jaeger + Collector (both the Jaeger v2 binary) + the example app under gunicorn."""

    jaeger_binary: str
    workdir: Path
    workers: int = 2
    preload: bool = False  # gunicorn --preload: the app (and its exporter) is created before the fork
    app_env: dict[str, str] = field(default_factory=dict)  # more environment for the app
    processes: list[Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.jaeger_otlp, self.query_http, self.query_grpc, self.collector_grpc,
         self.collector_http, self.app_port, self.collector_prometheus, self.prometheus_port,
         self.victorialogs_port) = free_ports(9)
        self.prometheus_url = f"http://127.0.0.1:{self.prometheus_port}"
        self.victorialogs_url = f"http://127.0.0.1:{self.victorialogs_port}"
        self.query = JaegerQuery(f"http://127.0.0.1:{self.query_http}")
        self.app_url = f"http://127.0.0.1:{self.app_port}"
        self.app_log = self.workdir / "app.jsonl"  # the app's JSON lines (SIGOBS_LOG_FILE)
        self.access_log = self.workdir / "gunicorn-access.log"

    # -- the parts ------------------------------------------------------------------------

    def validate(self, config: Path, env: dict[str, str]) -> None:
        result = subprocess.run([self.jaeger_binary, "validate", f"--config={config}"], env=env,
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise StackError(f"jaeger validate --config={config} failed:\n{result.stdout}{result.stderr}")

    def start_jaeger(self) -> Process:
        env = clean_environ(SIGOBS_JAEGER_OTLP=f"127.0.0.1:{self.jaeger_otlp}",
                            SIGOBS_JAEGER_QUERY_HTTP=f"127.0.0.1:{self.query_http}",
                            SIGOBS_JAEGER_QUERY_GRPC=f"127.0.0.1:{self.query_grpc}",
                            SIGOBS_PROMETHEUS_URL=self.prometheus_url)
        self.validate(JAEGER_CONFIG, env)
        process = self.start_process("jaeger", [self.jaeger_binary, f"--config={JAEGER_CONFIG}"], env)
        wait_for("Jaeger's query API", lambda: self.query.get("/api/services") is not None,
                 START_TIMEOUT, alive=process.check_alive)
        self.query.bodies.clear()
        return process

    def start_collector(self) -> Process:
        env = clean_environ(SIGOBS_COLLECTOR_GRPC=f"127.0.0.1:{self.collector_grpc}",
                            SIGOBS_COLLECTOR_HTTP=f"127.0.0.1:{self.collector_http}",
                            SIGOBS_JAEGER_OTLP=f"127.0.0.1:{self.jaeger_otlp}",
                            SIGOBS_COLLECTOR_PROMETHEUS=f"127.0.0.1:{self.collector_prometheus}",
                            SIGOBS_LOGS_OTLP_HTTP=f"{self.victorialogs_url}/insert/opentelemetry",
                            SIGOBS_SPANMETRICS_INTERVAL="2s")
        self.validate(COLLECTOR_CONFIG, env)
        process = self.start_process("collector", [self.jaeger_binary, f"--config={COLLECTOR_CONFIG}"], env)

        wait_for("the Collector's OTLP/HTTP receiver",
                 lambda: accepts_an_empty_export(f"http://127.0.0.1:{self.collector_http}/v1/traces"),
                 START_TIMEOUT, alive=process.check_alive)
        return process

    def start_prometheus(self, binary: str) -> Process:
        """Prometheus on loopback, scraping the Collector's prometheus exporter every second."""
        config = self.workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                          "scrape_configs:\n  - job_name: collector\n    static_configs:\n"
                          f"      - targets: ['127.0.0.1:{self.collector_prometheus}']\n")
        process = self.start_process("prometheus", [
            binary, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{self.prometheus_port}"], clean_environ())
        wait_for("Prometheus", lambda: http_request(self.prometheus_url + "/-/ready", timeout=2)[0] == 200,
                 START_TIMEOUT, alive=process.check_alive)
        return process

    def start_victorialogs(self, binary: str) -> Process:
        """VictoriaLogs on loopback: OTLP logs in at /insert/opentelemetry/v1/logs, LogsQL out."""
        process = self.start_process("victorialogs", [
            binary, f"-storageDataPath={self.workdir / 'victorialogs-data'}",
            f"-httpListenAddr=127.0.0.1:{self.victorialogs_port}"], clean_environ())
        wait_for("VictoriaLogs", lambda: http_request(self.victorialogs_url + "/health", timeout=2)[0] == 200,
                 START_TIMEOUT, alive=process.check_alive)
        return process

    def start_app(self) -> Process:
        env = clean_environ(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{self.collector_http}",
                            SIGOBS_LOG_FILE=str(self.app_log), PYTHONUNBUFFERED="1", **self.app_env)
        args = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), "-w", str(self.workers),
                "-b", f"127.0.0.1:{self.app_port}", "--graceful-timeout", "15",
                "--access-logfile", str(self.access_log),
                # the worker's pid and the request id, to see which worker served which request
                "--access-logformat", "%(p)s %({x-request-id}o)s %(m)s %(U)s %(s)s"]
        if self.preload:
            args.append("--preload")
        if _gunicorn_has_setting("control_socket_disable"):
            args.append("--no-control-socket")  # gunicorn 25+: else one shared socket in ~/.gunicorn
        args.append("examples.app:app")
        process = self.start_process("gunicorn", args, env)

        def workers_ready() -> bool:  # see gunicorn_conf.py
            return process.output(tail=1000).count("sigobs-e2e: worker") >= self.workers

        wait_for(f"{self.workers} gunicorn workers with the app loaded", workers_ready, START_TIMEOUT,
                 alive=process.check_alive)
        return process

    def start_process(self, name: str, args: list[str], env: dict[str, str]) -> Process:
        """A process of this stack, stopped with it, its output in the work folder."""
        process = Process(name, args, env, self.workdir / f"{name}.log")
        self.processes.append(process)  # before starting: stopped whatever happens next
        process.start()
        return process

    def stop(self) -> None:
        """Stop every part, newest first; never raises."""
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                process.stop()

    def outputs(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log}) ---\n{p.output()}" for p in self.processes)

    # -- requests ---------------------------------------------------------------------------

    def request_on_every_worker(self, path: str) -> list[tuple[int, dict[str, str]]]:
        """GET ``path`` once on each gunicorn worker: (status, headers) of each response.

        A sync worker that has accepted a connection whose request is not complete yet waits
        for it; so ``workers - 1`` connections holding half a request keep as many workers
        busy, in the order they were accepted, and the last request goes to the free worker.
        """
        start = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.app_port}\r\n"
                 f"User-Agent: sigobs-e2e/1.0\r\n").encode()
        held: list[socket.socket] = []
        try:
            for _ in range(self.workers - 1):
                sock = socket.create_connection(("127.0.0.1", self.app_port), timeout=HTTP_TIMEOUT)
                held.append(sock)
                sock.sendall(start)
            time.sleep(0.2)  # (not needed for the order; it lets each held request reach a worker)
            status, headers, _ = http_request(self.app_url + path, headers={"User-Agent": "sigobs-e2e/1.0"})
            results = [(status, headers)]
            for sock in held:
                sock.sendall(b"Connection: close\r\n\r\n")
                response = http.client.HTTPResponse(sock, method="GET")
                response.begin()
                response.read()
                results.append((response.status, dict(response.getheaders())))
            return results
        finally:
            for sock in held:
                sock.close()

    # -- reading what the app wrote -------------------------------------------------------

    def log_lines(self) -> list[dict[str, Any]]:
        if not self.app_log.exists():
            return []
        return [json.loads(line) for line in self.app_log.read_text().splitlines() if line.strip()]

    def worker_of_request(self) -> dict[str, int]:
        """request id -> pid of the gunicorn worker that served it (from the access log)."""
        served = {}
        if self.access_log.exists():
            for line in self.access_log.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[1] != "-":
                    served[parts[1]] = int(parts[0].strip("<>"))
        return served


def _gunicorn_has_setting(name: str) -> bool:
    from gunicorn.config import KNOWN_SETTINGS

    return any(setting.name == name for setting in KNOWN_SETTINGS)


@contextlib.contextmanager
def running_stack(jaeger_binary: str, workdir: Path, preload: bool = False,
                  app_env: dict[str, str] | None = None, with_app: bool = True) -> Iterator[Stack]:
    """Jaeger, the Collector and (``with_app``) the app, all started and ready; all stopped on
    the way out."""
    stack = Stack(jaeger_binary, workdir, preload=preload, app_env=dict(app_env or {}))
    with stopped_after(stack, "the end-to-end stack"):
        stack.start_jaeger()
        stack.start_collector()
        if with_app:
            stack.start_app()
        yield stack


@contextlib.contextmanager
def stopped_after(stack: Stack, what: str) -> Iterator[Stack]:
    """``stack``, stopped on the way out; what its processes printed is shown when something failed."""
    try:
        yield stack
    except BaseException:
        print(f"Output of {what}:\n{stack.outputs()}", file=sys.stderr)
        raise
    finally:
        stack.stop()
