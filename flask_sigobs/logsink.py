"""The log sink: one event in, one JSON line out.

Lines go to a :class:`LineWriter`, which writes each line with a single ``write`` on a file
opened with ``O_APPEND`` (so threads and gunicorn workers sharing one file never interleave
lines), and which swallows a full disk or a closed pipe: the request must still succeed.
"""

from __future__ import annotations

import datetime
import os
import sys
import threading
import time
from typing import Any

import orjson
import structlog

from .catalogue import LEVEL_NAMES
from .errors import report_once
from .events import Event


def _default(value: Any) -> str:
    """Last resort for a value orjson cannot serialise (an app's own structlog fields)."""
    try:
        return repr(value)[:1024]
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def dumps(event_dict: dict[str, Any], **_: Any) -> bytes:
    try:
        return orjson.dumps(event_dict, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except Exception as exc:  # an int beyond 64 bits, a recursive structure, ...
        report_once("serialise", "flask-sigobs could not serialise a log event: %s", exc)
        safe = {str(k): _default(v) if not isinstance(v, (str, int, float, bool, type(None))) else v
                for k, v in event_dict.items()}
        return orjson.dumps(safe, default=_default)


class LineWriter:
    """A structlog logger writing whole lines to a file (``O_APPEND``) or standard output."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None
        self._lock = threading.Lock()

    def msg(self, message: str | bytes) -> None:
        data = (message if isinstance(message, bytes) else message.encode("utf-8", "replace")) + b"\n"
        try:
            if self._fd is not None:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
            else:
                stream = sys.stdout
                buffer = getattr(stream, "buffer", None)
                with self._lock:
                    if buffer is not None:
                        buffer.write(data)
                    else:
                        stream.write(data.decode("utf-8"))
                    stream.flush()
        except Exception as exc:  # ENOSPC, EPIPE, a closed stream: never the app's problem
            report_once(("write", self.path), "flask-sigobs cannot write its log (%s): %s",
                        self.path or "stdout", exc)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def iso_utc(time_ns: int) -> str:
    stamp = datetime.datetime.fromtimestamp(time_ns / 1e9, datetime.timezone.utc)
    return stamp.isoformat(timespec="microseconds")[:-6] + "Z"


class LogSink:
    """Writes events through a structlog logger, with the request's correlation fields first."""

    def __init__(self, logger: Any, service_name: str, level: int) -> None:
        self._logger = logger
        self._service_name = service_name
        self.level = level

    def emit(self, event: Event, trace_id: str | None, span_id: str | None) -> None:
        if event.level < self.level:
            return
        line: dict[str, Any] = {
            "timestamp": iso_utc(event.time_ns),
            "level": LEVEL_NAMES[event.level],
            "service.name": self._service_name,
        }
        if trace_id is not None:
            line["trace_id"] = trace_id
            line["span_id"] = span_id
        line.update(event.attributes)
        getattr(self._logger, LEVEL_NAMES[event.level])(event.name, **line)


def own_logger(writer: LineWriter, log_format: str) -> Any:
    """Our events' logger when we own the structlog set-up: nothing between event and renderer."""
    return structlog.wrap_logger(
        writer,
        processors=[renderer(log_format, writer)],
        wrapper_class=structlog.make_filtering_bound_logger(0),
        cache_logger_on_first_use=True,
    ).bind()


def renderer(log_format: str, writer: LineWriter) -> Any:
    if log_format == "console":
        from .console import ConsoleLines

        return ConsoleLines(colors=writer.path is None and sys.stdout.isatty())
    return _move_event_first


def _move_event_first(logger: Any, method_name: str, event_dict: dict[str, Any]) -> bytes:
    """Render JSON with ``timestamp``, ``level``, ``event`` leading, whatever order they came in."""
    head = {"timestamp": event_dict.pop("timestamp", None), "level": event_dict.pop("level", method_name),
            "event": event_dict.pop("event", None)}
    if head["timestamp"] is None:
        head["timestamp"] = iso_utc(time.time_ns())
    head.update(event_dict)
    return dumps(head)
