"""What ``sigobs doctor`` says of the log record and metrics exporters: on or off, where to, and
what became of one test record (a log record named ``sigobs.doctor.test``, a gauge of that name)
sent straight to the endpoint, in words, with a fix for each failure."""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

SIGNALS = (("logs", "log records", "log_records", "logs_exporter", "LOGS"),
           ("metrics", "metrics", "metrics", "metrics_exporter", "METRICS"))


def check(report: Any, runtime: Any, timeout: float | None, send: bool, ok: str, warning: str,
          problem: str) -> None:
    settings = runtime.settings
    for check_name, words, attribute, setting, signal in SIGNALS:
        kind = getattr(settings, setting, "none")
        output = getattr(runtime, attribute, None)
        name = f"{check_name} exporter"
        if kind == "none":
            report.add(name, ok, f"{words} are off (OTEL_{signal}_EXPORTER=otlp or SIGOBS_{signal}_EXPORTER=otlp "
                                 "turns them on)")
            continue
        if output is None:
            report.add(name, problem, f"{words} are on but no endpoint is set: none are sent",
                       f"set OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_{signal}_ENDPOINT)")
            continue
        if output.owner == "app":
            report.add(name, ok, f"{words} go to the app's own {type(output.provider).__name__}")
            continue
        exporter = _exporter(output, attribute)
        endpoint = getattr(exporter, "_endpoint", None)
        if endpoint is None or not send:
            report.add(name, ok, f"{words} go to {type(exporter).__name__}" + (f" at {endpoint}" if endpoint else ""))
            continue
        status, said, fix = _send(exporter, signal, runtime.settings.service_name, timeout or 5.0)
        report.add(f"test {check_name[:-1] if check_name == 'logs' else 'metric'}",
                   ok if status == "accepted" else problem, f"test {'log record' if signal == 'LOGS' else 'metric'} "
                   f"to {_without_userinfo(str(endpoint))}: {said}", fix)


def _exporter(output: Any, attribute: str) -> Any:
    if attribute == "metrics":
        return output._exporter
    processors = getattr(output.provider._multi_log_record_processor, "_log_record_processors", ())
    for processor in processors:
        accounting = getattr(processor, "accounting", None)
        if accounting is not None:
            return accounting.inner
    return None


def _without_userinfo(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        parts = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
    return urllib.parse.urlunsplit(parts)


def _payload(signal: str, service: str) -> bytes:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])
    scope = InstrumentationScope(name="flask_sigobs.doctor")
    now = time.time_ns()
    if signal == "LOGS":
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
        from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

        record = LogRecord(time_unix_nano=now, observed_time_unix_nano=now, severity_number=9, severity_text="info",
                           body=AnyValue(string_value="sigobs doctor test record"))
        if "event_name" in LogRecord.DESCRIPTOR.fields_by_name:
            record.event_name = "sigobs.doctor.test"
        request = ExportLogsServiceRequest(resource_logs=[ResourceLogs(resource=resource, scope_logs=[
            ScopeLogs(scope=scope, log_records=[record])])])
    else:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
        from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint, ResourceMetrics, \
            ScopeMetrics

        metric = Metric(name="sigobs.doctor.test", unit="1",
                        gauge=Gauge(data_points=[NumberDataPoint(time_unix_nano=now, as_int=1)]))
        request = ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=[
            ScopeMetrics(scope=scope, metrics=[metric])])])
    return request.SerializeToString()


def _send(exporter: Any, signal: str, service: str, seconds: float) -> tuple[str, str, str | None]:
    """(outcome, words, fix) of one test request to ``exporter``'s endpoint."""
    endpoint = str(exporter._endpoint)
    path = urllib.parse.urlsplit(endpoint).path or "/"
    where = urllib.parse.urlsplit(endpoint).netloc.rpartition("@")[2]
    if "grpc" in type(exporter).__module__:
        return _send_grpc(exporter, signal, service, where)
    import requests

    session = getattr(exporter, "_session", None) or requests.Session()
    headers = {**dict(getattr(exporter, "_headers", None) or {}), "Content-Type": "application/x-protobuf"}
    started = time.monotonic()
    try:
        response = session.post(endpoint, data=_payload(signal, service), headers=headers, timeout=seconds,
                                verify=getattr(exporter, "_certificate_file", True))
    except requests.exceptions.ConnectTimeout:
        return "timed_out", f"no connection within {seconds:g} s to {where}", "check the host and port, and any firewall"
    except requests.exceptions.ReadTimeout:
        return "timed_out", f"no answer within {seconds:g} s from {where}", \
            "is it an OpenTelemetry Collector's OTLP/HTTP port (4318)?"
    except requests.exceptions.SSLError as exc:
        return "tls", f"TLS failed with {where}: {str(exc)[:200]}", "check https:// against what the endpoint speaks"
    except requests.exceptions.ConnectionError as exc:
        if "refused" in str(exc).lower():
            return "refused", f"connection refused: nothing listens on {where}", \
                "start the Collector, or fix OTEL_EXPORTER_OTLP_ENDPOINT"
        return "error", f"could not connect to {where}: {str(exc)[:200]}", "check the host and port"
    except Exception as exc:
        return "error", f"could not be sent: {type(exc).__name__}: {str(exc)[:200]}", None
    millis = (time.monotonic() - started) * 1000
    status = response.status_code
    suffix = "logs" if signal == "LOGS" else "metrics"
    if 200 <= status < 300:
        return "accepted", f"accepted (HTTP {status}) in {millis:.0f} ms", None
    if status == 404:
        return "wrong_path", f"HTTP 404 (wrong path): nothing at {path} on {where}", \
            (f"the Collector needs a {suffix} pipeline (otel-collector.yaml has one); or set "
             f"OTEL_EXPORTER_OTLP_ENDPOINT to the base URL (the exporter adds /v1/{suffix}) or "
             f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT to the full URL ending in /v1/{suffix}")
    if status in (401, 403):
        return "http_error", f"HTTP {status}: the endpoint wants credentials or refused them", \
            "set OTEL_EXPORTER_OTLP_HEADERS (for example authorization=Bearer ...)"
    text = response.text[:200].strip().encode("unicode_escape").decode("ascii")
    return "http_error", f"HTTP {status}" + (f": {text}" if text else "") + \
        (" (the collector is busy or failing)" if status == 429 or status >= 500 else ""), None


def _send_grpc(exporter: Any, signal: str, service: str, where: str) -> tuple[str, str, str | None]:
    """Over gRPC the exporter's own client sends it: its result is all there is to say."""
    try:
        stub = getattr(exporter, "_client", None)
        if stub is None:
            return "error", "the exporter's gRPC client is not where the doctor looks", None
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        kind = ExportLogsServiceRequest if signal == "LOGS" else ExportMetricsServiceRequest
        request = kind()
        request.ParseFromString(_payload(signal, service))
        stub.Export(request=request, metadata=getattr(exporter, "_headers", None), timeout=5)
        return "accepted", "accepted (gRPC OK)", None
    except Exception as exc:
        code = getattr(exc, "code", lambda: None)()
        name = getattr(code, "name", type(exc).__name__)
        if name == "UNIMPLEMENTED":
            return "wrong_path", f"gRPC UNIMPLEMENTED: {where} does not take {signal.lower()}", \
                f"the Collector needs a {signal.lower()} pipeline"
        if name == "UNAVAILABLE":
            return "refused", f"gRPC UNAVAILABLE: nothing answers on {where}", "start the Collector, or fix the endpoint"
        return "error", f"gRPC {name}: {str(exc)[:200]}", None
