"""The benchmark's exporting variants really send: every span reaches the discard server.

A benchmark whose spans were silently dropped would report a cost it never paid, so the
accounting itself is tested: a short run of ``benchmarks/request_overhead.py`` with the exporting
variants (OTLP/HTTP and OTLP/gRPC, the standard and flask-sigobs on each path) must say that
the endpoint, a separate process, received one span per request served, and count CPU on
threads other than the request thread (the export thread's).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

pytestmark = pytest.mark.slow

VARIANTS = ["otel-otlp", "otel-otlp-grpc", "sigobs-otlp", "sigobs-otlp-grpc", "sigobs-app-provider-otlp",
            "sigobs-otel-span-otlp", "sigobs-otlp-direct-writer"]


def test_the_exporting_variants_deliver_every_span_and_count_the_export_thread(tmp_path):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc")
    pytest.importorskip("opentelemetry.instrumentation.flask")
    env = dict(os.environ, SIGOBS_BENCH_LOG_DIR=str(tmp_path))
    # 1200 requests a round: full batches (512) leave on the export thread; the round's last, partial
    # one is flushed from the request thread before the clock stops (the SDK's force_flush exports there)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "request_overhead.py"), "--rounds", "1",
         "--requests", "1200", "--variants", ",".join(VARIANTS)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.split()}
    for variant in VARIANTS:
        row = rows[variant]
        assert re.search(r"\b2200 of 2200$", row), row  # 1000 warm-up requests + 1200, all received
        assert "LOST" not in row
        other = float(row.split()[7])  # the "other threads" column: the export thread's CPU
        assert other > 1.0, row
    assert "LOST" not in rows["otel"] and float(rows["bare"].split()[7]) < 1.0


def test_the_discard_server_counts_spans_per_listener_and_answers_an_empty_response():
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from benchmarks.request_overhead import Discard

    discard = Discard(["otel-otlp", "otel-otlp-grpc", "sigobs-no-export"])
    try:
        assert set(discard.addresses) == {"otel-otlp", "otel-otlp-grpc"}  # no endpoint for no export
        http = OTLPSpanExporter(endpoint=discard.addresses["otel-otlp"] + "/v1/traces")
        grpc = GrpcExporter(endpoint=discard.addresses["otel-otlp-grpc"], insecure=True)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(http))
        provider.add_span_processor(SimpleSpanProcessor(grpc))
        tracer = provider.get_tracer("test")
        for _ in range(3):
            with tracer.start_as_current_span("x"):
                pass
        received = discard.received()
        assert received["otel-otlp"]["spans"] == 3 and received["otel-otlp"]["requests"] == 3
        assert received["otel-otlp-grpc"]["spans"] == 3
        json.dumps(received)
        provider.shutdown()
    finally:
        discard.stop()
    assert discard.process.returncode == 0


def test_the_prototype_direct_writer_encodes_what_the_sdk_encoder_does():
    """benchmarks/otlp_direct.py is measured against encode_spans: it must say the same thing,
    for what a request span can hold and what limits drop, byte for byte."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
    from opentelemetry.trace import TraceState, set_span_in_context

    from benchmarks.otlp_direct import DirectEncoder

    memory = InMemorySpanExporter()
    for limits in (SpanLimits(), SpanLimits(max_span_attributes=3, max_events=1, max_event_attributes=1)):
        provider = TracerProvider(resource=Resource.create({"service.name": "équipe", "n": 3}), span_limits=limits)
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer("scope", "1.2", schema_url="https://opentelemetry.io/schemas/1.21.0")
        remote = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1),
                             trace_state=TraceState([("vendor", "v1")]))
        with tracer.start_as_current_span("GET /a", kind=SpanKind.SERVER, context=set_span_in_context(
                NonRecordingSpan(remote)), links=[Link(remote, {"link.n": 1})],
                attributes={"s": "ü", "b": False, "i": -7, "f": 0.5, "big": 2**62, "seq": ["x", "y"],
                            "ints": (1, 2), "empty": ""}) as span:
            span.add_event("one", {"request.id": "r", "t": True}, timestamp=5)
            span.add_event("two")
            span.set_status(Status(StatusCode.ERROR, "boom"))
            with tracer.start_as_current_span("child", kind=SpanKind.CLIENT):
                pass
        provider.get_tracer("other").start_span("no scope version").end()
    spans = memory.get_finished_spans()
    assert any(span.dropped_attributes for span in spans) and any(span.dropped_events for span in spans)
    mine = DirectEncoder().encode(spans)
    theirs = encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(mine) == theirs
    assert mine == theirs.SerializeToString()
