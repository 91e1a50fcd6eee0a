"""structlog and stdlib ``logging``: configure them when the app has not, join them when it has.

Either way the app's own log calls made during a request carry the request's ``trace_id``,
``span_id`` and ``request.id``: :func:`add_correlation` is a structlog processor that reads them
from the request state and the current span.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

import flask
import structlog
from opentelemetry import trace

from . import requeststate
from .logsink import LineWriter, own_logger, renderer
from .outputs.logrecord import forward_line
from .paths import scrub_recent
from .redaction import SECRETS_KEY, Redactor, scrub


def current_state() -> requeststate.RequestState | None:
    """The state of the request being served, if any (none for an excluded path)."""
    state = requeststate.current.get()
    if state is None and flask.has_request_context():
        state = flask.request.environ.get(requeststate.STATE_KEY)
    return None if state is requeststate.EXCLUDED else state


@functools.lru_cache(maxsize=1)
def _stdout() -> LineWriter:
    return LineWriter()


def add_correlation(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the request's correlation fields, unless the event has its own."""
    state = current_state()
    if state is not None:
        event_dict.setdefault("service.name", state.service_name)
        event_dict.setdefault("request.id", state.request_id)
        if state.trace_id is not None and "trace_id" not in event_dict:
            event_dict["trace_id"] = state.trace_id
            event_dict["span_id"] = state.span_id
    if "trace_id" not in event_dict:
        trace_id, span_id = requeststate.hex_ids(trace.get_current_span())
        if trace_id is not None:
            event_dict["trace_id"] = trace_id
            event_dict["span_id"] = span_id
    return event_dict


class _Router:
    """The app-wide structlog/logging destination: the current request's app, else the latest."""

    def __init__(self) -> None:
        self.fallback: LineWriter | None = None

    def _writer(self) -> LineWriter:
        state = current_state()
        writer = state.writer if state is not None else None
        return writer or self.fallback or _stdout()

    def msg(self, message: str | bytes) -> None:
        self._writer().msg(message)

    def urgent(self, message: str | bytes) -> None:
        self._writer().urgent(message)

    debug = info = log = msg
    warning = warn = error = critical = exception = fatal = urgent  # written before the response


class _Setup:
    """Process-wide facts: structlog's and logging's configuration are process-wide too."""

    owns_structlog = False
    router = _Router()
    handler: logging.Handler | None = None


class _LineHandler(logging.Handler):
    def __init__(self, router: _Router, level: int) -> None:
        super().__init__(level)
        self.router = router

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if record.levelno >= logging.WARNING:  # written before the response
                self.router.urgent(line)
            else:
                self.router.msg(line)
        except Exception:
            self.handleError(record)


class _CorrelationFilter(logging.Filter):
    """For an app that configured logging itself: correlation fields as record attributes."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = add_correlation(None, "", {})
        for key, value in fields.items():
            setattr(record, key, value)
        return True


_DEFAULT_REDACTOR = Redactor()
_URL_QUERY = re.compile(r"\?([^\s\"'#]+)")


def make_safe(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the app's and the libraries' own lines held to our events' rules.

    Values of sensitive keys redacted, every value bounded and JSON-safe, URL query strings in
    the message redacted (werkzeug's request line carries the raw one), so is the last path of
    this thread that had a secret segment, and any secret of the current request that the line
    echoes (an exception's message, say) replaced.
    """
    state = current_state()
    redactor = state.redactor if state is not None else _DEFAULT_REDACTOR
    secrets = state.environ.get(SECRETS_KEY) if state is not None else None
    event = event_dict.pop("event", None)
    safe = redactor.mapping(event_dict)
    if isinstance(event, str):
        if "?" in event:
            event = _URL_QUERY.sub(lambda m: "?" + redactor.query(m.group(1)), event)
        event = scrub_recent(event)  # the dev server's request line names a path with a secret in it
        safe["event"] = redactor.text(event)
    elif event is not None:
        safe["event"] = redactor.clean(event)
    if secrets:
        safe = _scrub_strings(safe, secrets)
    return safe


def _scrub_strings(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {k: _scrub_strings(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_strings(v, secrets) for v in value]
    return value


_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False))  # locals can hold secrets


def _as_text(render: Any) -> Any:
    """logging's formatters must return ``str``; our JSON renderer returns ``bytes``."""

    def text(logger: Any, method_name: str, event_dict: dict[str, Any]) -> Any:
        rendered = render(logger, method_name, event_dict)
        return rendered.decode("utf-8") if isinstance(rendered, bytes) else rendered

    return text


def configure(app: flask.Flask, writer: LineWriter, log_format: str, level: int,
              capture_logging: bool, service_name: str) -> tuple[Any, str]:
    """Set structlog (and stdlib logging) up for ``app``; return our events' logger and who owns it."""
    _Setup.router.fallback = writer
    chain_renderer = renderer(log_format, writer)
    if not structlog.is_configured() or _Setup.owns_structlog:
        if not _Setup.owns_structlog:
            structlog.configure(
                processors=[
                    structlog.contextvars.merge_contextvars,
                    structlog.processors.add_log_level,
                    add_correlation,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    _TRACEBACKS,
                    make_safe,
                    forward_line,  # the line as a log record too, when log records are on
                    chain_renderer,
                ],
                wrapper_class=structlog.make_filtering_bound_logger(level),
                logger_factory=lambda *args: _Setup.router,
                cache_logger_on_first_use=True,
            )
            _Setup.owns_structlog = True
        logger, owner = own_logger(writer, log_format), "flask-sigobs"
    else:
        processors = list(structlog.get_config()["processors"])
        if add_correlation not in processors:
            structlog.configure(processors=[add_correlation, *processors])
        logger, owner = structlog.get_logger("flask_sigobs"), "app"
    if capture_logging:
        _capture_stdlib(app, chain_renderer, level)
    return logger, owner


def _capture_stdlib(app: flask.Flask, chain_renderer: Any, level: int) -> None:
    root = logging.getLogger()
    ours = _Setup.handler
    if ours is None and not root.handlers:
        ours = _LineHandler(_Setup.router, logging.NOTSET)
        ours.setFormatter(structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                add_correlation,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                _TRACEBACKS,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, make_safe,
                        forward_line, _as_text(chain_renderer)],
        ))
        root.addHandler(ours)
        root.setLevel(level)
        _Setup.handler = ours
    if ours is not None:
        # Flask's default handler would print app.logger lines a second time, unstructured.
        from flask.logging import default_handler

        app.logger.removeHandler(default_handler)
    else:
        for handler in root.handlers:
            if not any(isinstance(f, _CorrelationFilter) for f in handler.filters):
                handler.addFilter(_CorrelationFilter())
