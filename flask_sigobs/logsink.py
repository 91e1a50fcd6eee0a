"""The log sink: one event in, one JSON line out.

Lines go to a :class:`LineWriter`, which writes each line with a single ``write`` on a file
opened with ``O_APPEND`` (so threads and gunicorn workers sharing one file never interleave
lines), and which swallows a full disk or a closed pipe: the request must still succeed.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
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
    """A structlog logger writing whole lines to a file (``O_APPEND``) or standard output.

    By default every line is written at once (one ``write`` call: lines of several threads or
    gunicorn workers never interleave). With ``flush_interval`` > 0, lines are gathered and
    written together at most that many seconds later (and at exit, and before a fork): on a
    machine where a system call costs tens of microseconds, that is most of a log line's cost.
    Each write still holds whole lines only, so a shared file stays line-clean.
    """

    MAX_BUFFER = 64 * 1024

    def __init__(self, path: str | None = None, flush_interval: float = 0.0) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None
        self._lock = threading.Lock()
        self.flush_interval = flush_interval
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._last_flush = time.monotonic()
        if flush_interval > 0:
            self._start_flusher()
            atexit.register(self.flush)
            reference = weakref.ref(self)
            os.register_at_fork(before=lambda: (w := reference()) and w.flush(),
                                after_in_child=lambda: (w := reference()) and w._start_flusher())

    def msg(self, message: str | bytes) -> None:
        data = (message if isinstance(message, bytes) else message.encode("utf-8", "replace")) + b"\n"
        if self.flush_interval <= 0:
            self._write(data)
            return
        with self._lock:
            self._pending.append(data)
            self._pending_size += len(data)
            due = (self._pending_size >= self.MAX_BUFFER
                   or time.monotonic() - self._last_flush >= self.flush_interval)
        if due:
            self.flush()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg

    def flush(self) -> None:
        with self._lock:
            if not self._pending:
                return
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            self._last_flush = time.monotonic()
            self._write(data)  # under the lock: chunks of one process keep their order

    def _write(self, data: bytes) -> None:
        try:
            if self._fd is not None:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
            else:
                stream = sys.stdout
                buffer = getattr(stream, "buffer", None)
                with self._stdout_lock:
                    if buffer is not None:
                        buffer.write(data)
                    else:
                        stream.write(data.decode("utf-8"))
                    stream.flush()
        except Exception as exc:  # ENOSPC, EPIPE, a closed stream: never the app's problem
            report_once(("write", self.path), "flask-sigobs cannot write its log (%s): %s",
                        self.path or "stdout", exc)

    _stdout_lock = threading.Lock()

    def _start_flusher(self) -> None:
        self._lock = threading.Lock()  # a lock held by another thread at fork time is never released
        reference = weakref.ref(self)
        interval = self.flush_interval

        def flusher() -> None:
            while True:
                time.sleep(interval)
                writer = reference()
                if writer is None:
                    return
                writer.flush()
                del writer

        threading.Thread(target=flusher, name="flask-sigobs-log-flush", daemon=True).start()

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _Clock:
    """ISO-8601 UTC timestamps, the formatted second cached: most lines share their second."""

    second = -1
    prefix = ""


def iso_utc(time_ns: int) -> str:
    second, rest = divmod(time_ns, 1_000_000_000)
    if second != _Clock.second:
        _Clock.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _Clock.second = second
    return f"{_Clock.prefix}.{rest // 1000:06d}Z"


class LogSink:
    """Writes events as log lines, with the request's correlation fields first.

    When flask-sigobs owns the structlog set-up and the format is JSON, the pipeline between an
    event and its line is exactly structlog's JSON renderer (orjson) and the writer, so the sink
    renders and writes the line itself: the same bytes, without the bound-logger machinery that
    every request would otherwise pay for. When the app configured structlog, events go through
    the app's own pipeline.
    """

    def __init__(self, logger: Any, service_name: str, level: int, writer: LineWriter | None = None) -> None:
        self._logger = logger
        self._service_name = service_name
        self._write = writer.msg if writer is not None else None
        self.level = level

    def emit(self, event: Event, trace_id: str | None, span_id: str | None) -> None:
        if event.level < self.level:
            return
        level = LEVEL_NAMES[event.level]
        line: dict[str, Any] = {"timestamp": iso_utc(event.time_ns), "level": level, "event": event.name,
                                "service.name": self._service_name}
        if trace_id is not None:
            line["trace_id"] = trace_id
            line["span_id"] = span_id
        line.update(event.attributes)
        if self._write is not None:
            self._write(dumps(line))
        else:
            del line["event"]
            getattr(self._logger, level)(event.name, **line)


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
