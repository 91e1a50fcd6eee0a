"""What exporting one span costs, piece by piece, measured alone: encode, serialise, send.

    python benchmarks/otlp_encode.py                 # batches of 512, 20 repeats
    python benchmarks/otlp_encode.py --batch 512 --repeats 40

The spans are real: flask-sigobs' default request spans (and the standard instrumentation's, for
comparison), made by the benchmark's own app on ``GET /items/7`` and caught by an in-memory
exporter. Then, batch by batch, in CPU microseconds per span (the median of the repeats):

- **encode**: ``opentelemetry-exporter-otlp-proto-common``'s ``encode_spans`` (SDK spans to the
  ``opentelemetry-proto`` messages), what both OTLP exporters call;
- **serialise**: ``SerializeToString`` of that request (protobuf's C extension, upb);
- **export over HTTP**: the SDK's ``OTLPSpanExporter.export`` of the batch to a local endpoint in
  another process (``benchmarks/discard.py``), encode and serialise included: its remainder beyond
  those two is the HTTP send (requests, urllib3, the socket);
- **export over gRPC**: the same with the OTLP/gRPC exporter (CPU of the whole process: gRPC's
  own threads count);
- **direct writer**: ``benchmarks/otlp_direct.py``'s prototype, which writes the protobuf bytes
  itself (encode and serialise in one), checked here to decode to the same request as
  ``encode_spans``' on every batch;
- **direct, records**: the same writer on plain records holding the same values as plain
  attributes (``Record``, no properties to call): what it would cost on a direct path's own span;
- **span, made and ended**: one SDK span through the public API with the same attributes and two
  events and no span processor: the object churn a direct path would replace;
- **record, made**: one ``Record`` with the same attributes and events, filled as a request would
  fill it (its attributes dict built, two events appended): the churn a direct path would pay.

It prints numbers; it does not pass or fail.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.otlp_direct import DirectEncoder  # noqa: E402
from benchmarks.request_overhead import Discard, _runner  # noqa: E402


def request_spans(variant: str, count: int) -> list[Any]:
    """``count`` request spans of ``variant`` ("sigobs" or "otel"), made by real requests."""
    import tempfile

    from flask import Flask
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from benchmarks.apps import _route

    memory = InMemorySpanExporter()
    app = _route(Flask(f"encode_{variant}"))
    if variant == "sigobs":
        from flask_sigobs import SigObs

        app.config.update(SIGOBS_SPAN_EXPORTER=memory,
                          SIGOBS_LOG_FILE=os.path.join(tempfile.mkdtemp(), "encode.log"))
        SigObs(app)
        run = _runner(app, lambda: app.extensions["sigobs"].runtime(app).tracer_provider.force_flush())
    else:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        from opentelemetry.sdk.resources import Resource

        provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        FlaskInstrumentor.instrument_app(app, tracer_provider=provider)
        run = _runner(app)
    run(count)
    spans = list(memory.get_finished_spans())
    assert len(spans) == count, (variant, len(spans))
    return spans


class Record:
    """What a direct path's request span could be: the fields the writer reads, nothing else."""

    __slots__ = ("context", "parent", "name", "kind", "start_time", "end_time", "attributes", "dropped_attributes",
                 "events", "dropped_events", "links", "dropped_links", "status", "resource", "instrumentation_scope")

    def __init__(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self, name, value)


class RecordEvent:
    __slots__ = ("name", "timestamp", "attributes", "dropped_attributes")

    def __init__(self, name: str, timestamp: int, attributes: dict[str, Any]) -> None:
        self.name, self.timestamp, self.attributes, self.dropped_attributes = name, timestamp, attributes, 0


def records(spans: list[Any]) -> list[Record]:
    return [Record(context=span.context, parent=span.parent, name=span.name, kind=span.kind,
                   start_time=span.start_time, end_time=span.end_time, attributes=dict(span.attributes),
                   dropped_attributes=0, events=[RecordEvent(e.name, e.timestamp, dict(e.attributes))
                                                 for e in span.events],
                   dropped_events=0, links=(), dropped_links=0, status=span.status, resource=span.resource,
                   instrumentation_scope=span.instrumentation_scope) for span in spans]


def record_churn(spans: list[Any], repeats: int) -> float:
    """One Record filled as a request fills its span: attributes set one by one, two events."""
    template = spans[0]
    attributes = list(template.attributes.items())
    events = [(event.name, dict(event.attributes or {})) for event in template.events]
    context, kind, status, resource, scope = (template.context, template.kind, template.status, template.resource,
                                              template.instrumentation_scope)
    count = 1000
    clock = time.time_ns

    def work() -> None:
        for _ in range(count):
            values: dict[str, Any] = {}
            for key, value in attributes:
                values[key] = value
            record = Record(context=context, parent=None, name=template.name, kind=kind, start_time=clock(),
                            attributes=values, dropped_attributes=0, events=[], dropped_events=0, links=(),
                            dropped_links=0, status=status, resource=resource, instrumentation_scope=scope)
            for name, event_attributes in events:
                record.events.append(RecordEvent(name, clock(), event_attributes))
            record.end_time = clock()

    return cpu_per_span(work, count, repeats, time.thread_time_ns)


def cpu_per_span(work: Callable[[], Any], spans: int, repeats: int, clock: Callable[[], int]) -> float:
    """Median CPU microseconds per span of ``work`` over ``repeats`` calls (after one to warm up)."""
    work()
    samples = []
    for _ in range(repeats):
        begin = clock()
        work()
        samples.append((clock() - begin) / spans / 1000)
    return statistics.median(samples)


def churn(spans: list[Any], repeats: int) -> float:
    """One SDK span, with the request span's attributes and events, made and ended (no processor)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind

    template = spans[0]
    tracer = TracerProvider().get_tracer("churn")
    attributes = dict(template.attributes)
    events = [(event.name, dict(event.attributes or {})) for event in template.events]
    count = 1000

    def work() -> None:
        for _ in range(count):
            span = tracer.start_span(template.name, kind=SpanKind.SERVER, attributes=attributes)
            for name, event_attributes in events:
                span.add_event(name, event_attributes)
            span.end()

    return cpu_per_span(work, count, repeats, time.thread_time_ns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=512, help="spans per export (OTEL_BSP_MAX_EXPORT_BATCH_SIZE)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    for key in [key for key in os.environ if key.startswith("OTEL_EXPORTER_OTLP")]:
        del os.environ[key]
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    batches = {variant: request_spans(variant, args.batch) for variant in ("sigobs", "otel")}
    discard = Discard(["encode-http", "encode-grpc"], {"encode-http": "otlp-http", "encode-grpc": "otlp-grpc"})
    try:
        http = OTLPSpanExporter(endpoint=discard.addresses["encode-http"] + "/v1/traces")
        grpc = GrpcExporter(endpoint=discard.addresses["encode-grpc"], insecure=True)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; batches of "
              f"{args.batch} request spans, median of {args.repeats}; CPU microseconds per span")
        print(f"{'spans of':<10}{'attrs':>6}{'events':>7}{'bytes':>7}{'encode':>9}{'serialise':>10}"
              f"{'HTTP export':>12}{'of it send':>11}{'gRPC export':>12}{'direct':>8}{'records':>8}{'span made':>10}"
              f"{'record made':>12}")
        for variant, spans in batches.items():
            message = encode_spans(spans)
            size = len(message.SerializeToString()) / len(spans)
            encode = cpu_per_span(lambda: encode_spans(spans), len(spans), args.repeats, time.thread_time_ns)
            serialise = cpu_per_span(message.SerializeToString, len(spans), args.repeats, time.thread_time_ns)
            over_http = cpu_per_span(lambda: http.export(spans), len(spans), args.repeats, time.process_time_ns)
            over_grpc = cpu_per_span(lambda: grpc.export(spans), len(spans), args.repeats, time.process_time_ns)
            direct = DirectEncoder()
            if ExportTraceServiceRequest.FromString(direct.encode(spans)) != message:
                raise SystemExit(f"the direct writer's request differs from encode_spans' ({variant})")
            written = cpu_per_span(lambda: direct.encode(spans), len(spans), args.repeats, time.thread_time_ns)
            plain = records(spans)
            if direct.encode(plain) != direct.encode(spans):
                raise SystemExit(f"the records encode differently from their spans ({variant})")
            on_records = cpu_per_span(lambda: direct.encode(plain), len(spans), args.repeats, time.thread_time_ns)
            made = churn(spans, args.repeats)
            record_made = record_churn(spans, args.repeats)
            attributes = len(spans[0].attributes)
            events = len(spans[0].events)
            print(f"{variant:<10}{attributes:>6}{events:>7}{size:>7.0f}{encode:>9.1f}{serialise:>10.1f}"
                  f"{over_http:>12.1f}{over_http - encode - serialise:>11.1f}{over_grpc:>12.1f}{written:>8.1f}"
                  f"{on_records:>8.1f}{made:>10.1f}{record_made:>12.1f}")
        received = discard.received()
        print(f"received: {received}")
        http.shutdown()
        grpc.shutdown()
    finally:
        discard.stop()


if __name__ == "__main__":
    main()
