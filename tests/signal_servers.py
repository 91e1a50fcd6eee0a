"""An OTLP/HTTP receiver of all three signals on loopback, for the log record and metrics tests.

:class:`OtlpReceiver` decodes what it is sent at ``/v1/logs``, ``/v1/metrics`` and ``/v1/traces``
and keeps it; ``refuse`` makes a path answer with an error status instead (a Collector without a
logs pipeline answers 404 on ``/v1/logs``).
"""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .servers import _attributes, _value


@dataclass
class ReceivedLog:
    event_name: str
    body: Any
    severity_number: int
    severity_text: str
    trace_id: str
    span_id: str
    flags: int
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass
class ReceivedPoint:
    metric: str
    unit: str
    kind: str  # histogram | sum
    attributes: dict[str, Any]
    value: float  # a sum's value, a histogram's count
    bounds: list[float]
    resource: dict[str, Any]
    monotonic: bool = False


class OtlpReceiver:
    def __init__(self, refuse: dict[str, int] | None = None) -> None:
        self.refuse = dict(refuse or {})
        self.requests: dict[str, int] = {}
        self._bodies: list[tuple[str, bytes]] = []
        self.raw = bytearray()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                path = self.path.split("?")[0]
                with receiver._lock:
                    receiver.requests[path] = receiver.requests.get(path, 0) + 1
                status = receiver.refuse.get(path)
                if status is None:
                    with receiver._lock:
                        receiver._bodies.append((path, body))
                    status = 200
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._logs: list[ReceivedLog] = []
        self._points: list[ReceivedPoint] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def _decode(self) -> None:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        with self._lock:
            bodies, self._bodies = self._bodies, []
        for path, body in bodies:
            self.raw += body
            if path == "/v1/logs":
                request = ExportLogsServiceRequest()
                request.ParseFromString(body)
                for resource_logs in request.resource_logs:
                    resource = _attributes(resource_logs.resource.attributes)
                    for scope in resource_logs.scope_logs:
                        for record in scope.log_records:
                            self._logs.append(ReceivedLog(
                                record.event_name, _value(record.body), record.severity_number,
                                record.severity_text, record.trace_id.hex(), record.span_id.hex(), record.flags,
                                _attributes(record.attributes), resource))
            elif path == "/v1/metrics":
                request = ExportMetricsServiceRequest()
                request.ParseFromString(body)
                for resource_metrics in request.resource_metrics:
                    resource = _attributes(resource_metrics.resource.attributes)
                    for scope in resource_metrics.scope_metrics:
                        for metric in scope.metrics:
                            kind = metric.WhichOneof("data")
                            if kind == "histogram":
                                for point in metric.histogram.data_points:
                                    self._points.append(ReceivedPoint(
                                        metric.name, metric.unit, kind, _attributes(point.attributes),
                                        point.count, list(point.explicit_bounds), resource))
                            elif kind == "sum":
                                for point in metric.sum.data_points:
                                    value = point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
                                    self._points.append(ReceivedPoint(
                                        metric.name, metric.unit, kind, _attributes(point.attributes), value, [],
                                        resource, metric.sum.is_monotonic))

    @property
    def logs(self) -> list[ReceivedLog]:
        self._decode()
        return list(self._logs)

    @property
    def points(self) -> list[ReceivedPoint]:
        self._decode()
        return list(self._points)

    def latest(self, metric: str) -> dict[tuple[Any, ...], ReceivedPoint]:
        """The latest point of each series (resource instance and attributes) of ``metric``:
        cumulative temporality, so the latest says everything."""
        found = {}
        for point in self.points:
            if point.metric == metric:
                key = (point.resource.get("service.instance.id"), tuple(sorted(point.attributes.items())))
                found[key] = point
        return found

    def __enter__(self) -> "OtlpReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
