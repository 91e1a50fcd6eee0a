"""The log record output: each event as an OpenTelemetry log record, exported over OTLP.

On when ``SIGOBS_LOGS_EXPORTER`` (or the standard ``OTEL_LOGS_EXPORTER``) is ``otlp`` (or
``console``). A record is the JSON line's twin: written for the same events (those at or above
``SIGOBS_LOG_LEVEL``), with the same attributes (the same redacted, bounded dict; a value that is
not a primitive nor a flat list of one becomes JSON text, as on the span), the event's name as the
record's ``event_name`` (and its body), a severity from its level, the request's trace context,
and ``service.name`` on the resource. The app's own structlog and stdlib lines, when flask-sigobs
set those up, go out the same way (:func:`forward_line`, a structlog processor).

Records are queued and sent in batches by a background thread (the SDK's
``BatchLogRecordProcessor``: the ``OTEL_BLRP_*`` variables are honoured); the queue is bounded,
and what does not fit is dropped, counted and reported once per interval (:class:`LogQueue`), as
for spans. The SDK flushes its provider at exit and restarts its thread after a fork. The JSON
line stays the durable local record: a record is never waited for.

The SDK's ``LoggingHandler`` (deprecated since 1.40) is not used: records are emitted from the
delivery path directly, through the ``Logger.emit`` the installed SDK has (keywords from 1.39 on,
an SDK ``LogRecord`` before), so every SDK from 1.35 works.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable

import orjson
from opentelemetry import trace

from ..catalogue import LEVEL_NAMES
from ..errors import Tally, report_once
from ..events import Event
from ..redaction import cut
from . import otlp

#: The SDK's severity numbers (opentelemetry._logs.SeverityNumber) of our levels.
_SEVERITY_NUMBERS = {logging.DEBUG: 5, logging.INFO: 9, logging.WARNING: 13, logging.ERROR: 17,
                     logging.CRITICAL: 21}
_NOTHING_SKIPPED: frozenset[str] = frozenset()
#: Loggers whose lines are never turned into records: the exporters' own (a failing export would
#: log, and its line would be a record to export) and ours (our reports are about that export).
_OWN_LOGGERS = ("opentelemetry", "flask_sigobs", "urllib3", "requests", "grpc")

_QUEUES: "weakref.WeakSet[Any]" = weakref.WeakSet()


_PRIMITIVES = (str, bool, int, float)


def span_attributes(attributes: dict[str, Any], skip: frozenset[str], max_length: int | None) -> dict[str, Any]:
    """The attributes as OTel takes them: primitives and flat lists of one primitive type as they
    are, anything else as JSON text cut at ``max_length`` (what ``tracesink.span_attributes`` does
    for span events; not imported from there, which brings the fast span path with it)."""
    out = {}
    for key, value in attributes.items():
        if value is None or key in skip:
            continue
        kind = type(value)
        if kind in _PRIMITIVES:
            out[key] = value
        elif kind is list and value and all(type(v) is type(value[0]) for v in value) \
                and type(value[0]) in _PRIMITIVES:
            out[key] = value
        else:
            text = orjson.dumps(value, default=str).decode()
            out[key] = cut(text, max_length) if max_length is not None else text
    return out


def severity(level: int) -> Any:
    from opentelemetry._logs import SeverityNumber

    number = _SEVERITY_NUMBERS.get(level)
    if number is None:  # a level between ours: the nearest below
        number = max((n for lvl, n in _SEVERITY_NUMBERS.items() if lvl <= level), default=1)
    return SeverityNumber(number)


class LogRecordOutput:
    """One app's log records: ``emit`` is called by the delivery loop for every event."""

    name = "log record"

    def __init__(self, logger: Any, level: int, max_length: int, provider: Any, owner: str) -> None:
        self.level = level
        self.provider = provider
        self.owner = owner  # "flask-sigobs" (our provider) or "app" (the app's global one)
        self._max_length = max_length
        self._emit = _emitter(logger)
        self._severities = {lvl: severity(lvl) for lvl in _SEVERITY_NUMBERS}

    def emit(self, event: Event, span: Any, trace_id: str | None, span_id: str | None) -> None:
        if event.level < self.level:  # the JSON line's threshold: records are its twins
            return
        attributes = span_attributes(event.attributes, _NOTHING_SKIPPED, self._max_length)
        self.record(event.name, event.level, event.time_ns, span, attributes, event.name)

    def record(self, body: str, level: int, time_ns: int, span: Any, attributes: dict[str, Any],
               event_name: str | None) -> None:
        context = trace.set_span_in_context(span) if span is not None else None
        number = self._severities.get(level) or severity(level)
        self._emit(time_ns, context, number, LEVEL_NAMES.get(level, "info"), body, attributes, event_name)

    def flush(self, timeout_millis: int = 5000) -> None:
        if self.owner == "flask-sigobs":
            self.provider.force_flush(timeout_millis)


def _emitter(logger: Any) -> Callable[..., None]:
    """How to emit a record through ``logger`` on the installed SDK."""
    try:
        keywords = "event_name" in inspect.signature(logger.emit).parameters
    except (TypeError, ValueError):
        keywords = False
    if keywords:  # SDK 1.39+ (and the API's own loggers): keywords, no record object of our own

        def emit(time_ns: int, context: Any, number: Any, text: str, body: str, attributes: dict[str, Any],
                 event_name: str | None) -> None:
            logger.emit(timestamp=time_ns, observed_timestamp=time_ns, context=context, severity_number=number,
                        severity_text=text, body=body, attributes=attributes, event_name=event_name)

        return emit
    from opentelemetry.sdk._logs import LogRecord  # SDK 1.35 to 1.38: a record with its resource

    try:
        has_event_name = "event_name" in inspect.signature(LogRecord.__init__).parameters
    except (TypeError, ValueError):
        has_event_name = False
    resource = getattr(logger, "resource", None)

    def emit_record(time_ns: int, context: Any, number: Any, text: str, body: str, attributes: dict[str, Any],
                    event_name: str | None) -> None:
        extra: dict[str, Any] = {}
        if event_name is not None:
            if has_event_name:
                extra["event_name"] = event_name
            else:  # an SDK before event_name: the older convention, an attribute
                attributes = {**attributes, "event.name": event_name}
        if context is None:
            from opentelemetry.context import get_current

            context = get_current()
        logger.emit(LogRecord(timestamp=time_ns, observed_timestamp=time_ns, context=context,
                              severity_number=number, severity_text=text, body=body, resource=resource,
                              attributes=attributes, **extra))

    return emit_record


def _batch_size(batch: Any) -> int:
    return len(batch)


def log_queue(exporter: Any, report_interval: float = 60.0) -> Any:
    """A ``BatchLogRecordProcessor`` over ``exporter`` that counts what it could not deliver."""
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    class LogQueue(BatchLogRecordProcessor):
        """Drops the newest record when the queue is full (the SDK would drop the oldest, with a
        warning per record), counting it; failed exports are counted by the accounting exporter."""

        def __init__(self) -> None:
            name = otlp.describe(exporter)
            self.drops = Tally("log_records_dropped", "flask-sigobs dropped %d log records in the last %.0f s: "
                               "the log record queue (OTEL_BLRP_MAX_QUEUE_SIZE) was full; the log exporter "
                               f"({name}) is slow or unreachable", report_interval)
            self.failures = Tally("log_records_failed", "flask-sigobs could not export %d log records in the "
                                  f"last %.0f s: the log exporter ({name}) failed or timed out", report_interval)
            self.accounting = otlp.Accounting(exporter, self.failures, _batch_size)
            super().__init__(self.accounting)
            self._lock = threading.Lock()
            reference = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: (q := reference()) is not None and q._after_fork())
            _QUEUES.add(self)

        def _after_fork(self) -> None:
            self._lock = threading.Lock()
            self.drops.reset()
            self.failures.reset()
            self.accounting.exported = 0

        def on_emit(self, record: Any) -> None:  # 1.35: a LogData; later: a ReadWriteLogRecord
            batch = getattr(self, "_batch_processor", None)
            queue = getattr(batch, "_queue", None)
            if queue is not None and queue.maxlen is not None and len(queue) >= queue.maxlen:
                self.drops.add()
                return
            super().on_emit(record)
            if self.drops.pending or self.failures.pending:
                self.drops.tick()
                self.failures.tick()

        emit = on_emit  # the name of SDKs before on_emit

        def shutdown(self) -> None:
            try:
                super().shutdown()
            finally:
                self.drops.flush()
                self.failures.flush()

    return LogQueue()


def accounts() -> dict[str, int]:
    queues = list(_QUEUES)
    return {"exported": sum(q.accounting.exported for q in queues), "dropped": sum(q.drops.total for q in queues),
            "failed": sum(q.failures.total for q in queues)}


def build(kind: Any, service_name: str, level: int, max_length: int) -> LogRecordOutput | None:
    """The log record output ``kind`` asks for (``otlp``, ``console``, a LogExporter), or None."""
    from opentelemetry import _logs

    current = _logs.get_logger_provider()
    ours = getattr(current, "_sigobs_owned", False)
    proxy = type(current).__name__ == "ProxyLoggerProvider"  # none set yet (not a public name)
    if not proxy and not isinstance(current, _logs.NoOpLoggerProvider) and not ours:
        logger = current.get_logger("flask_sigobs")  # the app set OpenTelemetry logs up: its provider
        return LogRecordOutput(logger, level, max_length, current, "app")
    if kind == "otlp":
        exporter = otlp.log_exporter()
    elif kind == "console":
        exporter = otlp.console_log_exporter()
    else:
        exporter = kind  # an exporter instance (app.config)
    if exporter is None:
        return None
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    provider = LoggerProvider(resource=Resource.create({SERVICE_NAME: service_name}))  # flushed at exit
    provider._sigobs_owned = True  # type: ignore[attr-defined]
    provider.add_log_record_processor(log_queue(exporter))
    if proxy:
        _logs.set_logger_provider(provider)
    output = LogRecordOutput(provider.get_logger("flask_sigobs"), level, max_length, provider, "flask-sigobs")
    return output


# -- the app's own lines ------------------------------------------------------------------------

class _Lines:
    """app -> its LogRecordOutput, for the app's own structlog and stdlib lines."""

    by_app: "weakref.WeakKeyDictionary[Any, LogRecordOutput]" = weakref.WeakKeyDictionary()
    latest: "weakref.ref[LogRecordOutput] | None" = None
    busy = threading.local()


def register_lines(app: Any, output: LogRecordOutput) -> None:
    _Lines.by_app[app] = output
    _Lines.latest = weakref.ref(output)


_LINE_KEYS = ("timestamp", "level", "event", "trace_id", "span_id", "service.name")


def forward_line(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor, after redaction: the app's own line as a log record too (when an app
    has log records on); the line itself goes on unchanged."""
    if _Lines.latest is None:  # no app has log records on: one look-up, nothing else
        return event_dict
    try:
        name = event_dict.get("logger")
        if isinstance(name, str) and name.startswith(_OWN_LOGGERS):
            return event_dict
        if getattr(_Lines.busy, "on", False):  # a record's own export logging: not again
            return event_dict
        _Lines.busy.on = True
        try:
            _forward(event_dict, method_name)
        finally:
            _Lines.busy.on = False
    except Exception as exc:
        report_once(("log record line", type(exc)), "flask-sigobs could not make a log record of a line: %r", exc)
    return event_dict


def _forward(event_dict: dict[str, Any], method_name: str) -> None:
    import flask

    from ..config import LEVELS
    from ..structlog_setup import current_state

    output = None
    if flask.has_app_context():
        output = _Lines.by_app.get(flask.current_app._get_current_object())
    if output is None:
        if flask.has_app_context():
            return  # an app without log records
        output = _Lines.latest() if _Lines.latest is not None else None
        if output is None:
            return
    level = LEVELS.get(str(event_dict.get("level") or method_name).lower(), logging.INFO)
    if level < output.level:
        return
    state = current_state()
    span = state.span if state is not None and state.span is not None else trace.get_current_span()
    attributes = {key: value for key, value in event_dict.items() if key not in _LINE_KEYS}
    body = event_dict.get("event")
    output.record(body if isinstance(body, str) else str(body), level, time.time_ns(), span,
                  span_attributes(attributes, _NOTHING_SKIPPED, output._max_length), None)


class RecordHandler(logging.Handler):
    """For an app that configured stdlib ``logging`` itself (flask-sigobs then leaves its handlers
    alone): its lines as log records too, redacted and bounded as our own lines are."""

    def emit(self, record: logging.LogRecord) -> None:
        if _Lines.latest is None or record.name.startswith(_OWN_LOGGERS) or getattr(_Lines.busy, "on", False):
            return
        try:
            from ..structlog_setup import add_correlation, make_safe

            fields: dict[str, Any] = {"event": record.getMessage(), "logger": record.name}
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                fields["exception.type"] = type(error).__name__
                fields["exception.message"] = str(error)
            fields = make_safe(None, record.levelname.lower(), add_correlation(None, "", fields))
            fields["level"] = record.levelname.lower()
            forward_line(None, record.levelname.lower(), fields)
        except Exception as exc:
            report_once(("log record handler", type(exc)), "flask-sigobs could not make a log record of a "
                        "line: %r", exc)


def capture_app_logging() -> None:
    """Our :class:`RecordHandler` on the root logger, once, unless our own line handler (whose
    lines :func:`forward_line` sends already) is there."""
    from ..structlog_setup import _Setup

    root = logging.getLogger()
    if _Setup.handler is not None and _Setup.handler in root.handlers:
        return
    if not any(isinstance(handler, RecordHandler) for handler in root.handlers):
        root.addHandler(RecordHandler(logging.NOTSET))
