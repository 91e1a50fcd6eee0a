"""The span exporters of the app's TracerProvider, found behind its processors, and its sampler,
tried on a few thousand new trace ids to say what share of requests get a span.

The exporters are found by their module and class name and by the SDK's private attributes: an
app's own set-up can hold any of them, and the doctor must not need their packages to say so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .describe import _type_name, _without_userinfo
from .report import OK, PROBLEM, WARNING, Report


@dataclass
class ExporterInfo:
    kind: str  # otlp-http | otlp-grpc | console | in-memory | other
    exporter: Any
    processor: Any
    endpoint: str | None = None

    @property
    def protocol(self) -> str:
        return {"otlp-http": "http/protobuf", "otlp-grpc": "grpc"}.get(self.kind, "-")

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "class": _type_name(self.exporter), "processor": _type_name(self.processor),
                "endpoint": _without_userinfo(self.endpoint) if self.endpoint else None, "protocol": self.protocol}


def _processors(provider: Any) -> list[Any]:
    active = getattr(provider, "_active_span_processor", None)
    return list(getattr(active, "_span_processors", ()) or ())


def _exporter_of(processor: Any) -> Any:
    exporter = getattr(processor, "span_exporter", None)
    if exporter is None:
        batch = getattr(processor, "_batch_processor", None)
        exporter = getattr(batch, "_exporter", None) or getattr(processor, "_exporter", None)
    inner = getattr(exporter, "inner", None)  # our accounting wrapper
    return inner if inner is not None else exporter


def _exporters(provider: Any) -> list[ExporterInfo]:
    found = []
    for processor in _processors(provider):
        exporter = _exporter_of(processor)
        if exporter is None:
            continue
        module = type(exporter).__module__
        name = type(exporter).__name__
        if module.startswith("opentelemetry.exporter.otlp.proto.http"):
            found.append(ExporterInfo("otlp-http", exporter, processor, getattr(exporter, "_endpoint", None)))
        elif module.startswith("opentelemetry.exporter.otlp.proto.grpc"):
            endpoint = getattr(exporter, "_endpoint", None)
            if endpoint and "://" not in endpoint:
                endpoint = ("http://" if getattr(exporter, "_insecure", True) else "https://") + endpoint
            found.append(ExporterInfo("otlp-grpc", exporter, processor, endpoint))
        elif name == "ConsoleSpanExporter":
            found.append(ExporterInfo("console", exporter, processor))
        elif name == "InMemorySpanExporter":
            found.append(ExporterInfo("in-memory", exporter, processor))
        else:
            found.append(ExporterInfo("other", exporter, processor))
    return found


def _check_exporters(report: Report, runtime: Any, exporters: list[ExporterInfo]) -> None:
    if not hasattr(runtime.tracer_provider, "add_span_processor"):
        return
    if not exporters:
        kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
        if runtime.otel_owner != "flask-sigobs":
            report.add("exporter", PROBLEM,
                       "the app's own TracerProvider has no span exporter: spans are recorded, then dropped",
                       "add a span processor with an exporter to the app's TracerProvider, or let flask-sigobs "
                       "set OpenTelemetry up (do not set a TracerProvider)")
        elif kind == "none":
            report.add("exporter", PROBLEM, "OTEL_TRACES_EXPORTER=none: spans are not exported",
                       "set OTEL_TRACES_EXPORTER=otlp and OTEL_EXPORTER_OTLP_ENDPOINT")
        else:
            report.add("endpoint", PROBLEM,
                       "no endpoint configured: neither OTEL_EXPORTER_OTLP_ENDPOINT nor "
                       "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, so spans are recorded and never sent",
                       "set OTEL_EXPORTER_OTLP_ENDPOINT=http://<collector>:4318 (http/protobuf) or "
                       "OTEL_EXPORTER_OTLP_ENDPOINT=http://<collector>:4317 with OTEL_EXPORTER_OTLP_PROTOCOL=grpc")
        return
    for info in exporters:
        if info.kind in ("otlp-http", "otlp-grpc"):
            report.add("endpoint", OK, f"spans are exported over OTLP {info.protocol} to "
                                       f"{_without_userinfo(info.endpoint or '?')}")
        elif info.kind == "console":
            report.add("exporter", OK, "spans are printed on standard output (OTEL_TRACES_EXPORTER=console)")
        elif info.kind == "in-memory":
            report.add("exporter", WARNING, "spans go to an in-memory exporter: they stay inside the process "
                                            "(a test set-up?)")
        else:
            report.add("exporter", WARNING, f"spans go to {_type_name(info.exporter)}: not an exporter the "
                                            "doctor can test; no test span sent")


def _check_sampler(report: Report, provider: Any) -> None:
    sampler = getattr(provider, "sampler", None)
    if sampler is None:
        return
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.trace import SpanKind

    description = sampler_name(sampler)
    ids = RandomIdGenerator()
    tries = 2000
    kept = 0
    try:
        for _ in range(tries):
            result = sampler.should_sample(None, ids.generate_trace_id(), "GET /", SpanKind.SERVER)
            kept += bool(result.decision.is_sampled())
    except Exception as exc:
        report.sampler = {"description": description, "error": repr(exc)}
        report.add("sampler", WARNING, f"the sampler {description} could not be tried: {exc!r}")
        return
    share = kept / tries
    report.sampler = {"description": description, "kept_share_of_new_traces": round(share, 3),
                      "OTEL_TRACES_SAMPLER": os.environ.get("OTEL_TRACES_SAMPLER"),
                      "OTEL_TRACES_SAMPLER_ARG": os.environ.get("OTEL_TRACES_SAMPLER_ARG")}
    if kept == 0:
        report.add("sampler", PROBLEM,
                   f"the sampler {description} drops every new trace (0 of {tries} kept): no request gets a span",
                   "unset OTEL_TRACES_SAMPLER (or set it to parentbased_always_on), or raise OTEL_TRACES_SAMPLER_ARG")
    elif kept < tries:
        report.add("sampler", WARNING if share < 0.5 else OK,
                   f"the sampler {description} keeps about {share:.0%} of new traces: the other requests get no "
                   f"span (their log lines are still written)")
    else:
        report.add("sampler", OK, f"the sampler {description} keeps every new trace")


def sampler_name(sampler: Any) -> str:
    """A sampler as ``OTEL_TRACES_SAMPLER`` names it: ``parentbased_always_on``, ``traceidratio(0.1)``."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    if isinstance(sampler, ParentBased):
        root = getattr(sampler, "_root", None)
        return f"parentbased_{sampler_name(root)}" if root is not None else "parentbased"
    if isinstance(sampler, TraceIdRatioBased):
        return f"traceidratio({sampler.rate})"
    description = sampler.get_description() if hasattr(sampler, "get_description") else type(sampler).__name__
    return {"AlwaysOnSampler": "always_on", "AlwaysOffSampler": "always_off"}.get(description, description)
