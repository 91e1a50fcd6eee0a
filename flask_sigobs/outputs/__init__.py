"""Where an event goes besides the JSON line and the span event: one module per output.

Every output has the same small interface, and the runtime hands each event to the outputs
chosen at ``init_app``, each call guarded on its own (a failing output is reported once and
never stops the next one, nor the request)::

    name: str                                   # for the report of a failure
    emit(event, span, trace_id, span_id)        # one event (span: the request's, or the current)
    flush(timeout_millis)                       # SigObs.flush(): send what waits, now

An output that is off is not in the list: it costs the delivery loop nothing.

- :mod:`.logrecord`: each event as an OpenTelemetry log record (``SIGOBS_LOGS_EXPORTER`` /
  ``OTEL_LOGS_EXPORTER``);
- :mod:`.metrics`: the HTTP server metrics and the auth event counters (``SIGOBS_METRICS_EXPORTER``
  / ``OTEL_METRICS_EXPORTER``); besides ``emit`` it is told when each request starts and ends.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..events import Event


class Output(Protocol):
    name: str

    def emit(self, event: Event, span: Any, trace_id: str | None, span_id: str | None) -> None: ...

    def flush(self, timeout_millis: int = 5000) -> None: ...


def build(app: Any, settings: Any) -> tuple[tuple[Output, ...], Any, Any]:
    """(the outputs of ``app``'s events, its log record output or None, its metrics output or None)."""
    outputs: list[Output] = []
    records = metrics = None
    if settings.logs_exporter != "none":
        from . import logrecord

        records = logrecord.build(settings.logs_exporter, settings.service_name, settings.log_level,
                                  settings.max_value_length)
        if records is not None:
            outputs.append(records)
            logrecord.register_lines(app, records)
            if settings.capture_logging:
                logrecord.capture_app_logging()
    if settings.metrics_exporter != "none":
        from . import metrics as metrics_module

        auth_events = frozenset(source.event for source in settings.configured_signals if source.is_auth)
        metrics = metrics_module.build(settings.metrics_exporter, settings.service_name, auth_events)
        if metrics is not None:
            outputs.append(metrics)
    return tuple(outputs), records, metrics
