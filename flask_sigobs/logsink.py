"""The log sink: one event in, one JSON line out.

Lines go to a :class:`LineWriter`, which writes each line with a single ``write`` on a file
opened with ``O_APPEND`` (so threads and gunicorn workers sharing one file never interleave
lines), and which swallows a full disk or a closed pipe: the request must still succeed.
"""

from __future__ import annotations

import atexit
import os
import select
import stat
import sys
import threading
import time
import weakref
from logging import WARNING
from typing import Any, Iterator

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

    Lines are gathered and written together at most ``flush_interval`` seconds later. An urgent
    line (``warning`` and above, and every authentication event: what a crash must not erase)
    is written at once, with every line that waits before it, in order, so it is in the kernel's
    hands before its request's response is sent and a SIGKILL after that response loses none of
    them; only the lines of the last ``flush_interval`` that came after the last urgent one can
    be lost that way. Lines are also written when 64 KiB are waiting, at exit (before the span
    exporter's shutdown: see :meth:`flush_first_at_exit`) and before a fork.

    One ``write`` per request is not just a system call: it releases the GIL, and when the
    span exporter's thread is waiting for the GIL, every release hands it a futile wake-up that
    costs the request about 15 us and starves the exporter (spans dropped under load). Each
    write holds whole lines only, so threads and gunicorn workers sharing one file never
    interleave lines; on a pipe each write is at most ``PIPE_BUF`` bytes (lines longer than that
    go alone), which is what keeps lines of several processes whole there. ``flush_interval=0``
    writes each line at once.

    The waiting lines are copied into one ``bytearray`` as they come, while they are still in the
    processor's cache; a list of the lines' own ``bytes`` kept each alive until the flush, which
    cost the request more than the copy (about 2% of a request of the default pipeline).
    """

    MAX_BUFFER = 64 * 1024

    def __init__(self, path: str | None = None, flush_interval: float = 0.0) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None
        self._chunk = self._chunk_size()
        self._new_locks()
        self.flush_interval = flush_interval
        self._pending = bytearray()  # whole lines, each ending in a newline
        if self._fd is not None:  # an app that goes away takes its file descriptor with it
            self._closer = weakref.finalize(self, os.close, self._fd)
        self._at_exit: Any = None
        if flush_interval > 0:
            self._start_flusher()
            reference = weakref.ref(self)  # the hooks must not keep a writer (and its thread) alive
            self._at_exit = lambda: (w := reference()) and w.flush()
            atexit.register(self._at_exit)
            os.register_at_fork(before=lambda: (w := reference()) and w.flush(),
                                after_in_child=lambda: (w := reference()) and w._after_fork())

    def _chunk_size(self) -> int | None:
        """``PIPE_BUF`` when lines go to a pipe or socket, where only writes that small are atomic."""
        try:
            fd = self._fd if self._fd is not None else sys.stdout.fileno()
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return None
        except (AttributeError, OSError, ValueError):  # stdout replaced by an object without a file
            return None
        return select.PIPE_BUF

    def write_line(self, data: bytes, urgent: bool = False) -> None:
        """Write one rendered line (without its newline); ``urgent``: now, with what waits."""
        if self.flush_interval <= 0:
            self._write(data + b"\n")
            return
        with self._lock:  # the flusher thread writes them within flush_interval: no clock read here
            pending = self._pending
            pending += data
            pending += b"\n"
            due = urgent or len(pending) >= self.MAX_BUFFER
        if due:
            self.flush()

    def msg(self, message: str | bytes) -> None:
        self.write_line(_encoded(message))

    def urgent(self, message: str | bytes) -> None:
        self.write_line(_encoded(message), True)

    debug = info = log = msg
    warning = warn = error = critical = exception = fatal = urgent

    def flush_first_at_exit(self) -> None:
        """Make the exit's flush run before every exit handler registered until now.

        ``atexit`` runs its handlers last in, first out, and the ``TracerProvider`` made after
        this writer registers its shutdown later: on a collector that is down or slow that
        shutdown can take the export timeout, and gunicorn's SIGKILL (``--graceful-timeout``
        after SIGTERM, a second after a worker timeout's SIGABRT) would find the lines still
        waiting behind it.
        """
        if self._at_exit is not None:
            atexit.unregister(self._at_exit)
            atexit.register(self._at_exit)

    def flush(self) -> None:
        """Write the waiting lines; on return, every line written before the call is out, also
        those another flush (the flusher thread, an error line) took and is still writing."""
        with self._lock:
            if not self._pending:
                pending = None
            else:
                pending = self._pending
                self._pending = bytearray()
                # Writes are ordered by their own (re-entrant) lock, outside the buffer's: a failed
                # write is reported on the logging path, which may come back here with a line.
                self._write_lock.acquire()
        if pending is None:  # lines taken before are written under the write lock: wait for them
            with self._write_lock:
                return
        try:
            if self._chunk is None:
                self._write(pending)
            else:
                for chunk in _chunks(pending, self._chunk):
                    self._write(chunk)
        finally:
            self._write_lock.release()

    def _write(self, data: bytes | bytearray) -> None:
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

    def _new_locks(self) -> None:
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()

    def _after_fork(self) -> None:
        self._new_locks()  # a lock held by another thread at fork time is never released
        # Lines another thread added after the fork's flush are the parent's to write: written
        # here too, they would be in the file twice.
        self._pending = bytearray()
        self._start_flusher()

    def _start_flusher(self) -> None:
        reference = weakref.ref(self)
        interval = self.flush_interval

        def flusher() -> None:
            while True:
                time.sleep(interval)
                writer = reference()
                if writer is None:
                    return
                if writer._pending:
                    writer.flush()
                del writer

        threading.Thread(target=flusher, name="flask-sigobs-log-flush", daemon=True).start()

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            self._closer()
            self._fd = None


def _encoded(message: str | bytes) -> bytes:
    return message if isinstance(message, bytes) else message.encode("utf-8", "replace")


def _chunks(lines: bytes | bytearray, limit: int) -> Iterator[bytes | bytearray]:
    """Newline-terminated ``lines`` in writes of whole lines, each at most ``limit`` bytes (a line
    longer than that goes alone). Each is a slice of ``lines``: one copy, which ``write`` takes."""
    start, size = 0, len(lines)
    while start < size:
        end = start + limit
        if end >= size:
            yield lines[start:]
            return
        cut = lines.rfind(b"\n", start, end)  # the last line that ends within the limit
        if cut < 0:  # a line longer than the limit: alone
            cut = lines.find(b"\n", end - 1)
            cut = size - 1 if cut < 0 else cut
        yield lines[start:cut + 1]
        start = cut + 1


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


class _AuthNames(dict):
    """Event name -> whether it is an authentication event (``auth.*``), learnt once per name:
    a dictionary hit costs a line a third of what ``startswith`` does. Names come from code
    (signals and ``observe``), never from a request, so the dictionary stays small."""

    def __missing__(self, name: str) -> bool:
        is_auth = self[name] = name.startswith("auth.")
        return is_auth


class LogSink:
    """Writes events as log lines, with the request's correlation fields first.

    When flask-sigobs owns the structlog set-up and the format is JSON, the pipeline between an
    event and its line is exactly structlog's JSON renderer (orjson) and the writer, so the sink
    renders and writes the line itself: the same bytes, without the bound-logger machinery that
    every request would otherwise pay for. When the app configured structlog, events go through
    the app's own pipeline.
    """

    def __init__(self, logger: Any, service_name: str, level: int, writer: LineWriter | None = None,
                 flush: Any = None) -> None:
        self._logger = logger
        self._service_name = service_name
        self._write = writer.write_line if writer is not None else None
        self._flush = flush  # our writer behind our own (console) pipeline: an auth line's flush
        self._auth = _AuthNames()
        self.level = level

    def emit(self, event: Event, trace_id: str | None, span_id: str | None) -> None:
        """Write ``event``'s line; the caller has checked its level against :attr:`level`."""
        level = LEVEL_NAMES[event.level]
        line: dict[str, Any] = {"timestamp": iso_utc(event.time_ns), "level": level, "event": event.name,
                                "service.name": self._service_name}
        if trace_id is not None:
            line["trace_id"] = trace_id
            line["span_id"] = span_id
        line.update(event.attributes)
        urgent = event.level >= WARNING or self._auth[event.name]  # written before the response
        if self._write is not None:
            self._write(dumps(line), urgent)
        else:
            del line["event"]
            getattr(self._logger, level)(event.name, **line)
            if urgent and event.level < WARNING and self._flush is not None:
                self._flush()  # an authentication event at info: the writer's ``info`` lets it wait


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
