"""Real servers on loopback for the fault, load and hostile-input tests.

- OTLP endpoints a collector can be: :class:`OtlpSink` (a working OTLP/HTTP receiver that decodes
  and keeps every span, optionally answering after a delay: a slow collector, or refusing the
  spans it takes, as :class:`OtlpGrpcSink` does over gRPC),
  :func:`refused_endpoint` (a reserved port nobody listens on: connection refused) and
  :class:`BlackHole` (accepts connections and never answers).
- :func:`gunicorn`: the test app (``tests.served_app:app``) under a real gunicorn, in its own
  process group, killed whatever happens.
- :func:`raw_request`: bytes on a socket, for requests no HTTP client library would send.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .e2e.stack import audit_place

if TYPE_CHECKING:  # typing.Self is 3.11's: the suite runs on 3.10 too
    from typing_extensions import Self

REPO = Path(__file__).resolve().parent.parent


# -- OTLP endpoints ---------------------------------------------------------------------------

@dataclass
class ReceivedSpan:
    trace_id: str
    span_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_message: str
    service: str
    status_code: int = 0  # 0 unset, 1 ok, 2 error (OTLP's StatusCode)


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind)


def _attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in key_values}


class OtlpSink:
    """A working OTLP/HTTP traces endpoint: decodes every request and keeps its spans.

    With ``rejects``, it answers as a backend that takes a request but refuses its spans does:
    success, with a partial success that counts every span of the request as rejected and says why.
    """

    def __init__(self, delay: float = 0.0, rejects: str | None = None) -> None:
        self.delay = delay
        self.rejects = rejects
        self._spans: list[ReceivedSpan] = []
        self._bodies: list[bytes] = []
        self.requests = 0
        self.raw = bytearray()  # every payload decoded so far, decompressed: what was exported
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                sink._receive(body)
                if sink.delay:
                    time.sleep(sink.delay)
                answer = sink._answer(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1/traces"

    def _answer(self, body: bytes) -> bytes:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                              ExportTraceServiceResponse)

        if self.rejects is None:
            return ExportTraceServiceResponse().SerializeToString()
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        return _rejecting(request, self.rejects).SerializeToString()

    def _receive(self, body: bytes) -> None:
        with self._lock:  # decoded when asked for: decoding here would compete with the client
            self.requests += 1
            self._bodies.append(body)

    def _decode(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        with self._lock:
            bodies, self._bodies = self._bodies, []
        for body in bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource_spans in request.resource_spans:
                service = _attributes(resource_spans.resource.attributes).get("service.name", "")
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self._spans.append(ReceivedSpan(
                            trace_id=span.trace_id.hex(), span_id=span.span_id.hex(), name=span.name,
                            kind=span.kind, attributes=_attributes(span.attributes),
                            events=[(event.name, _attributes(event.attributes)) for event in span.events],
                            status_message=span.status.message, service=service,
                            status_code=span.status.code))
            self.raw += body

    @property
    def spans(self) -> list[ReceivedSpan]:
        self._decode()
        return list(self._spans)

    def server_spans(self) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.kind == 2]  # SPAN_KIND_SERVER

    def __enter__(self) -> "OtlpSink":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@contextlib.contextmanager
def refused_endpoint() -> Iterator[str]:
    """An OTLP URL on a port reserved by a bound, never listening socket: connections are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1/traces"
    finally:
        sock.close()


def _rejecting(request: Any, reason: str) -> Any:
    """The answer of a backend that refuses every span of ``request``: a partial success saying why."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    answer = ExportTraceServiceResponse()
    answer.partial_success.rejected_spans = sum(len(scope.spans) for resource in request.resource_spans
                                                for scope in resource.scope_spans)
    answer.partial_success.error_message = reason
    return answer


class OtlpGrpcSink:
    """An OTLP/gRPC traces endpoint that, like :class:`OtlpSink` with ``rejects``, answers as a backend
    that takes every export and refuses its spans, saying why (a partial success)."""

    def __init__(self, rejects: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        sink = self
        self.rejects = rejects
        self.requests = 0

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's naming)
                sink.requests += 1
                return _rejecting(request, sink.rejects)

        self._server = grpc.server(ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "OtlpGrpcSink":
        self._server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.stop(grace=None)


class _Listener:
    """A TCP server on 127.0.0.1 whose thread hands every connection it accepts to ``_handle``."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1/traces"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


class BlackHole(_Listener):
    """Accepts every connection and never answers nor reads: the export waits for its timeout."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[socket.socket] = []

    def _handle(self, conn: socket.socket) -> None:
        self.accepted.append(conn)

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        for conn in self.accepted:
            conn.close()


class Answers(_Listener):
    """Answers every connection with the same bytes, whatever was asked, then closes it: a server
    that is not an OTLP endpoint, or one that says something hostile."""

    def __init__(self, reply: bytes) -> None:
        super().__init__()
        self._reply = reply
        self.connections = 0

    def _handle(self, conn: socket.socket) -> None:
        self.connections += 1
        with conn:
            try:
                conn.settimeout(2)
                conn.recv(65536)
                conn.sendall(self._reply)
            except OSError:
                pass


# -- gunicorn ---------------------------------------------------------------------------------

def _gunicorn_options() -> list[str]:
    """gunicorn 25+ opens a control socket in ``~/.gunicorn``: shared by parallel runs, so off."""
    from gunicorn.config import KNOWN_SETTINGS

    known = {flag for setting in KNOWN_SETTINGS for flag in (setting.cli or ())}
    return ["--no-control-socket"] if "--no-control-socket" in known else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Gunicorn:
    process: subprocess.Popen
    port: int
    stderr_path: Path
    workers: int
    base: str = field(init=False)

    def __post_init__(self) -> None:
        self.base = f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        return [int(line.rsplit(":", 1)[1].strip()) for line in self.stderr().splitlines()
                if "Booting worker with pid:" in line]

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM to the master, as a process manager stops it; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


def server_env(**overrides: str | None) -> dict[str, str]:
    """The environment for a server under test: ours, minus any OTLP set-up, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "SIGOBS_")) and k not in ("PYTEST_CURRENT_TEST",)}
    env["PYTHONPATH"] = str(REPO)
    env["OTEL_TRACES_EXPORTER"] = "none"
    env.update(audit_place())  # a trail of its own (see audit_place)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@contextlib.contextmanager
def gunicorn(tmp_path: Path, env: dict[str, str], *, workers: int = 2, args: tuple[str, ...] = (),
             app: str = "tests.served_app:app", stdout: Any = subprocess.DEVNULL,
             ready_timeout: float = 30.0) -> Iterator[Gunicorn]:
    """gunicorn serving ``app`` on a free loopback port; every process of it killed at the end."""
    port = free_port()
    stderr_path = tmp_path / f"gunicorn-{port}.err"
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
               "--graceful-timeout", "20", "--timeout", "60", *_gunicorn_options(), *args, app]
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=stdout, stderr=stderr,
                                   start_new_session=True)
    server = Gunicorn(process, port, stderr_path, workers)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{server.stderr()}")
            if len(server.worker_pids()) >= workers:
                try:
                    status, _, _ = http_get(f"{server.base}/health", timeout=2)
                    if status == 200:
                        break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start in {ready_timeout} s:\n{server.stderr()}")
            time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the group: master and its workers
            process.wait(10)
        else:  # the master is gone; a worker it left behind would still be in its group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


# -- HTTP clients -----------------------------------------------------------------------------

def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0,
             method: str = "GET", body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection (what the latency figures time)."""
    assert url.startswith("http://")
    host_port, _, path = url[len("http://"):].partition("/")
    host, _, port = host_port.partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request(method, "/" + path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def raw_request(port: int, data: bytes, method: str = "GET",
                timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as is; read and parse the response (status 0: the server closed without one).

    Reads on to the end of the connection: the server closes it once the request is over, its
    teardown signals included, so every line of the request is written by then.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock, method=method)
        try:
            response.begin()
            body = response.read()
        except (http.client.HTTPException, ConnectionResetError):
            return 0, {}, b""
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def json_lines(raw: bytes) -> list[dict[str, Any]]:
    """Every line of a log, parsed: a line that is not one JSON object fails the test."""
    out = []
    if not raw:
        return out
    for line in raw.split(b"\n")[:-1] if raw.endswith(b"\n") else raw.split(b"\n"):
        parsed = json.loads(line)
        assert isinstance(parsed, dict), line
        out.append(parsed)
    assert not raw or raw.endswith(b"\n"), "the log ends with a partial line"
    return out


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with ``fraction`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]
