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
            "sigobs-otel-span-otlp"]


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
