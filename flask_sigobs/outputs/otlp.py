"""The OTLP exporters of the log records and the metrics, chosen as the span exporter is.

The standard variables keep their meaning, per signal: ``OTEL_EXPORTER_OTLP_{LOGS,METRICS}_ENDPOINT``
(else ``OTEL_EXPORTER_OTLP_ENDPOINT``, the exporter adds ``/v1/logs`` or ``/v1/metrics``),
``..._PROTOCOL`` (``http/protobuf`` or ``grpc``), ``..._TIMEOUT`` (seconds, bounded as for spans),
headers, certificates, compression (read by the SDK's exporters themselves). Without any
endpoint the signal is not sent (as for spans): nothing goes to a default address by surprise.

:class:`Accounting` wraps the exporter of either signal: every batch it fails to deliver is
counted and reported on the ``flask_sigobs`` logger at most once per interval (``errors.Tally``),
as the span export queue does.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Mapping

from ..config import ConfigError
from ..errors import Tally, report_once
from ..otel_setup import export_timeout  # one reading of the timeout variables for all three signals

KINDS = ("otlp", "console", "none")


def endpoint_configured(signal: str, environ: Mapping[str, str]) -> bool:
    return bool(environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def protocol(signal: str, environ: Mapping[str, str]) -> str:
    value = (environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
             or "http/protobuf").strip().lower()
    if value not in ("http/protobuf", "grpc"):
        raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL must be 'http/protobuf' or 'grpc', not {value!r}")
    return value


def log_exporter(environ: Mapping[str, str] | None = None) -> Any:
    """The OTLP log record exporter the standard variables ask for, or None (no endpoint)."""
    return _exporter("LOGS", "log records", "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
                     "opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter", environ)


def metric_exporter(environ: Mapping[str, str] | None = None) -> Any:
    """The OTLP metric exporter the standard variables ask for, or None (no endpoint)."""
    return _exporter("METRICS", "metrics", "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
                     "opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter", environ)


def _exporter(signal: str, what: str, grpc_module: str, http_module: str, name: str,
              environ: Mapping[str, str] | None) -> Any:
    """``signal``'s OTLP exporter (gRPC or HTTP, as its protocol variable says), imported only once
    asked for (the gRPC one needs the ``[grpc]`` extra), or None and one line when no endpoint is set."""
    environ = os.environ if environ is None else environ
    if not endpoint_configured(signal, environ):
        report_once(f"{signal.lower()}_no_endpoint", f"flask-sigobs: {what} are on but no OTLP endpoint is set "
                    f"(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_{signal}_ENDPOINT): none are sent")
        return None
    timeout = export_timeout(environ, signal)
    if protocol(signal, environ) == "grpc":
        return getattr(importlib.import_module(grpc_module), name)(timeout=timeout)
    return getattr(importlib.import_module(http_module), name)(timeout=timeout, session=_session())


def _session() -> Any:
    """The span exporter's session, in which the CA file wins (see ``otel_setup``)."""
    from ..otel_setup import _ca_file_first_session

    return _ca_file_first_session()


def console_log_exporter() -> Any:
    from opentelemetry.sdk._logs.export import ConsoleLogExporter

    return ConsoleLogExporter()


def console_metric_exporter() -> Any:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

    return ConsoleMetricExporter()


def describe(exporter: Any) -> str:
    return str(getattr(exporter, "_endpoint", None) or type(exporter).__name__).replace("%", "%%")


class Accounting:
    """Counts what an exporter of log records or metrics delivered and what it failed to.

    ``size(batch)`` says how many items a batch holds (log records, or metric data points); a
    failed export adds them to ``failures``, reported once per interval. ``muted`` (a forked
    child's copy of its parent's metrics) sends nothing and says it succeeded.
    """

    def __init__(self, inner: Any, failures: Tally, size: Any) -> None:
        self.inner = inner
        self.failures = failures
        self._size = size
        self.exported = 0
        self.muted = False

    def export(self, batch: Any, **kwargs: Any) -> Any:
        if self.muted:
            return _success(self.inner)
        ok = False
        try:
            result = self.inner.export(batch, **kwargs)
            ok = getattr(result, "name", None) == "SUCCESS"
            return result
        finally:
            try:
                count = self._size(batch)
            except Exception:
                count = 1
            if ok:
                self.exported += count
            elif count:
                self.failures.add(count)

    def shutdown(self, *args: Any, **kwargs: Any) -> Any:
        if self.muted:  # a forked child's copy: the exporter may still serve the child
            return None
        return self.inner.shutdown(*args, **kwargs)

    def force_flush(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.force_flush(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # _preferred_temporality and the like
        return getattr(self.inner, name)


def _success(inner: Any) -> Any:
    module = type(inner).__module__
    if "metric" in module:
        from opentelemetry.sdk.metrics.export import MetricExportResult

        return MetricExportResult.SUCCESS
    from opentelemetry.sdk._logs.export import LogExportResult

    return LogExportResult.SUCCESS
