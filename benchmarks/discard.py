"""A local endpoint that accepts what the benchmark's variants export, counts it and discards it.

    python benchmarks/discard.py NAME:KIND [NAME:KIND ...]

KIND is ``otlp-http`` (POST /v1/traces, answered 200 with an empty ExportTraceServiceResponse),
``otlp-grpc`` (TraceService/Export, the same answer), ``sentry`` (POST /api/<project>/envelope/)
or ``elastic`` (POST /intake/v2/events, and the server information the agent asks for first).
Each NAME gets a listener of its own on 127.0.0.1, so what arrives is counted per variant
without looking at headers. It prints one line of JSON, ``{"NAME": "http://127.0.0.1:PORT",
...}`` (``127.0.0.1:PORT`` for gRPC), then answers each line read on stdin with a JSON object
of what each NAME received so far (``{"NAME": {"requests": R, "spans": S, "bytes": B}}``, and
``"cpu_s"``: this process's own CPU seconds since it was ready, to show it is not the bottleneck), and
exits when stdin closes: the benchmark that started it bounds its life.

It runs in its own process, so its CPU time is not the measured variants'; it counts spans
by decoding each request (upb's C parser: a few microseconds per batch of 512 spans), which is
cheap beside what the senders spend making them, so it is not the bottleneck (the benchmark
says how many spans each variant's exporter dropped, which a slow endpoint would raise).
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Tally:
    """What one listener received: requests, spans (or transactions) and bytes on the wire."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = self.spans = self.bytes = 0

    def add(self, spans: int, size: int) -> None:
        with self.lock:
            self.requests += 1
            self.spans += spans
            self.bytes += size

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {"requests": self.requests, "spans": self.spans, "bytes": self.bytes}


def otlp_spans(body: bytes) -> int:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest.FromString(body)
    return sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)


def _inflate(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def sentry_transactions(body: bytes) -> int:
    """Envelope items of type transaction: one per request span sentry-sdk sends."""
    count = 0
    for line in body.split(b"\n"):
        if line.startswith(b"{") and b'"type"' in line:
            try:
                header = json.loads(line)
            except ValueError:
                continue
            if header.get("type") == "transaction":
                count += 1
    return count


def elastic_transactions(body: bytes) -> int:
    """NDJSON lines that are transactions: one per request elastic-apm sends."""
    return sum(1 for line in body.split(b"\n") if line.startswith(b'{"transaction"'))


def http_handler(kind: str, tally: Tally) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the exporters reuse one connection

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # elastic-apm asks for the server's version first
            self._answer(200, b'{"version": "8.15.0", "build_date": "2024-01-01T00:00:00Z"}')

        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(size)
            body = _inflate(raw, (self.headers.get("Content-Encoding") or "").strip().lower())
            if kind == "otlp-http":
                tally.add(otlp_spans(body), size)
                # an empty ExportTraceServiceResponse serialises to no bytes at all
                self._answer(200, b"", "application/x-protobuf")
            elif kind == "sentry":
                tally.add(sentry_transactions(body), size)
                self._answer(200, b"{}")
            else:
                tally.add(elastic_transactions(body), size)
                self._answer(202)

    return Handler


def grpc_server(tally: Tally) -> tuple[Any, int]:
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            tally.add(sum(len(scope.spans) for resource in request.resource_spans
                          for scope in resource.scope_spans), request.ByteSize())
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def main(specs: list[str]) -> None:
    tallies: dict[str, Tally] = {}
    addresses: dict[str, str] = {}
    servers: list[Any] = []
    for spec in specs:
        name, _, kind = spec.partition(":")
        tally = tallies[name] = Tally()
        if kind == "otlp-grpc":
            server, port = grpc_server(tally)
            servers.append(server)
            addresses[name] = f"127.0.0.1:{port}"
        elif kind in ("otlp-http", "sentry", "elastic"):
            http = ThreadingHTTPServer(("127.0.0.1", 0), http_handler(kind, tally))
            http.daemon_threads = True
            threading.Thread(target=http.serve_forever, daemon=True).start()
            servers.append(http)
            addresses[name] = f"http://127.0.0.1:{http.server_address[1]}"
        else:
            raise SystemExit(f"discard: unknown kind {kind!r} in {spec!r}")
    print(json.dumps(addresses), flush=True)
    ready = time.process_time()  # start-up (imports, listeners) is not what the exports cost it
    for _line in sys.stdin:
        counts: dict[str, Any] = {name: tally.as_dict() for name, tally in tallies.items()}
        counts["cpu_s"] = time.process_time() - ready
        print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
