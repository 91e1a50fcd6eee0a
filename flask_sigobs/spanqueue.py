"""The span export queue: bounded in memory and in time, and every span accounted for.

The SDK's ``BatchSpanProcessor`` keeps ended spans in a queue that a background thread sends to
the exporter in batches. When the collector is down, slow or black-holed, the requests must
not notice: the queue is bounded (``OTEL_BSP_MAX_QUEUE_SIZE``, default 2048 spans) and the spans
that do not fit are dropped. :class:`ExportQueue` drops the *newest* span when the queue is full
(as the OpenTelemetry specification describes it) and accounts for every span it is given:

- ``exported``: the exporter said it succeeded;
- ``dropped``: there was no room in the queue;
- ``failed``: the exporter failed or timed out (the collector refused it, never answered, ...);
- ``abandoned``: still queued, or being exported, when shutdown's time was up.

Dropped and failed spans are reported on the ``flask_sigobs`` logger at most once per
:attr:`ExportQueue.report_interval` (the first at once, the rest with their count), never once per
span; what is left is said at shutdown.

The standard variables keep their meaning: ``OTEL_BSP_MAX_QUEUE_SIZE``,
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` (default 512; half the queue when the queue is smaller),
``OTEL_BSP_SCHEDULE_DELAY`` (milliseconds between exports, default 5000) and
``OTEL_BSP_EXPORT_TIMEOUT`` (milliseconds, default 30000), which the SDK leaves unused and which
bounds here how long shutdown waits for the last spans to leave.
"""

from __future__ import annotations

import inspect
import os
import threading
import weakref
from typing import Any, Sequence

from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import TraceFlags

from .config import ConfigError
from .errors import Tally, failures, logger

#: Every live queue of this process, for ``sigobs doctor`` and tests: :func:`dropped_spans`.
_QUEUES: "weakref.WeakSet[ExportQueue]" = weakref.WeakSet()


class _Accounting(SpanExporter):
    """Wraps the real exporter: counts what it exported and what it failed to, batch by batch."""

    def __init__(self, inner: SpanExporter, failed: Tally) -> None:
        self.inner = inner
        self.failed = failed
        self.exported = 0
        self.in_flight = 0
        self.abandoned = False  # after shutdown gave up: a late result is no longer counted
        try:
            self._pass_timeout = "timeout_millis" in inspect.signature(inner.shutdown).parameters
        except (TypeError, ValueError):
            self._pass_timeout = False

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.in_flight = len(spans)
        ok = False
        try:
            result = self.inner.export(spans)
            ok = result is SpanExportResult.SUCCESS
            return result
        except Exception:  # SDK 1.35's OTLP/HTTP exporter raises on a read timeout where newer ones fail:
            return SpanExportResult.FAILURE  # counted and reported below, not a traceback per batch
        finally:
            count, self.in_flight = self.in_flight, 0
            if not self.abandoned:
                if ok:
                    self.exported += count
                else:
                    self.failed.add(count)

    def shutdown(self, timeout_millis: float | None = None) -> None:
        if self._pass_timeout and timeout_millis is not None:
            self.inner.shutdown(timeout_millis=timeout_millis)  # type: ignore[call-arg]
        else:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class ExportQueue(BatchSpanProcessor):
    """A ``BatchSpanProcessor`` that counts and reports every span it could not deliver."""

    report_interval = 60.0

    def __init__(self, exporter: SpanExporter, *, report_interval: float | None = None,
                 **kwargs: Any) -> None:
        if report_interval is not None:
            self.report_interval = report_interval
        self._name = str(getattr(exporter, "_endpoint", None) or type(exporter).__name__)
        name = self._name.replace("%", "%%")  # it goes into a logging format string
        queue_size = kwargs.pop("max_queue_size", None) or BatchSpanProcessor._default_max_queue_size()
        batch_size = kwargs.pop("max_export_batch_size", None) or BatchSpanProcessor._default_max_export_batch_size()
        if 0 < queue_size < batch_size:  # OTEL_BSP_MAX_QUEUE_SIZE=100 alone must not stop the app booting;
            batch_size = max(1, queue_size // 2)  # half: the queue still has room while a batch leaves
        self.drops = Tally("spans_dropped", "flask-sigobs dropped %d spans in the last %.0f s: the span "
                           f"export queue (OTEL_BSP_MAX_QUEUE_SIZE={queue_size}) was full; the span "
                           f"exporter ({name}) is slow or unreachable", self.report_interval)
        self.failures = Tally("spans_failed", "flask-sigobs could not export %d spans in the last %.0f s: "
                              f"the span exporter ({name}) failed or timed out", self.report_interval)
        self._exporter = _Accounting(exporter, self.failures)
        try:
            super().__init__(self._exporter, max_queue_size=queue_size, max_export_batch_size=batch_size, **kwargs)
        except ValueError as error:
            raise ConfigError(f"OTEL_BSP_* variables: {error}") from None
        batch = self._batch_processor
        self.max_queue_size: int = queue_size
        self.export_timeout_millis: float = batch._export_timeout_millis
        self.abandoned = 0
        self._queue = getattr(batch, "_queue", None)
        try:  # SDK releases before 1.4x take no timeout: their shutdown waits for the export thread unbounded
            self._shutdown_takes_timeout = "timeout_millis" in inspect.signature(batch.shutdown).parameters
        except (TypeError, ValueError):
            self._shutdown_takes_timeout = False
        self._batch_size = batch_size
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):
            reinit = weakref.WeakMethod(self._after_fork)

            def after_in_child() -> None:
                method = reinit()
                if method is not None:
                    method()

            os.register_at_fork(after_in_child=after_in_child)
        _QUEUES.add(self)

    @property
    def span_exporter(self) -> SpanExporter:
        return self._exporter.inner

    @property
    def dropped(self) -> int:
        """Spans dropped because the queue was full (since start, or since the fork)."""
        return self.drops.total

    @property
    def failed(self) -> int:
        """Spans the exporter failed to deliver."""
        return self.failures.total

    @property
    def exported(self) -> int:
        return self._exporter.exported

    def queued(self) -> int:
        return len(self._queue) if self._queue is not None else 0

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a thread of the parent may have held it while forking
        self.drops.reset()
        self.failures.reset()
        self._exporter.exported = self._exporter.in_flight = 0
        self.abandoned = 0

    def on_end(self, span: Any) -> None:
        context = span._context  # a ReadableSpan's; its properties would be three calls
        if not (context and context[3] & TraceFlags.SAMPLED):  # a SpanContext is a tuple: [3] its flags
            return
        queue = self._queue
        batch = self._batch_processor
        if queue is None or queue.maxlen is None or batch._shutdown:  # an SDK whose insides moved
            batch.emit(span)
            return
        # What BatchProcessor.emit does, without its os.getpid() system call per span: forks are
        # handled by the at-fork hooks (the SDK's and ours), which every fork runs.
        with self._lock:  # only the export thread takes from the queue meanwhile: no overflow
            full = len(queue) >= queue.maxlen
            if not full:
                queue.appendleft(span)
                wake = len(queue) >= self._batch_size
        if full:
            self.drops.add()
            return
        if wake and not batch._worker_awaken.is_set():
            batch._worker_awaken.set()
        if self.drops.pending or self.failures.pending:  # a count waits for its report interval
            self.drops.tick()
            self.failures.tick()

    def shutdown(self) -> None:
        """Export what is queued, waiting at most ``OTEL_BSP_EXPORT_TIMEOUT``; say what was not."""
        batch = self._batch_processor
        try:
            if self._shutdown_takes_timeout:
                batch.shutdown(timeout_millis=self.export_timeout_millis)
            else:  # the same bound, kept here: the SDK's shutdown waits in a thread of its own
                waiting = threading.Thread(target=batch.shutdown, name="flask-sigobs-shutdown", daemon=True)
                waiting.start()
                waiting.join(self.export_timeout_millis / 1000)
        finally:
            worker = getattr(batch, "_worker_thread", None)
            if worker is not None and worker.is_alive():  # still inside an export: give up on it
                self._exporter.abandoned = True
                self.abandoned = self._exporter.in_flight + self.queued()
            self.drops.flush()
            self.failures.flush()
            if self.abandoned:
                failures["spans_abandoned"] += self.abandoned
                try:
                    logger.warning("flask-sigobs gave up on %d spans at shutdown: the span exporter (%s) "
                                   "did not finish within OTEL_BSP_EXPORT_TIMEOUT=%d ms", self.abandoned,
                                   self._name, self.export_timeout_millis)
                except Exception:
                    pass


def dropped_spans() -> int:
    """Spans dropped by this process's export queues because they were full."""
    return sum(queue.dropped for queue in list(_QUEUES))


def accounts() -> dict[str, int]:
    """What this process's export queues did with their spans: exported, dropped, failed, ..."""
    queues = list(_QUEUES)
    return {"exported": sum(q.exported for q in queues), "dropped": sum(q.dropped for q in queues),
            "failed": sum(q.failed for q in queues), "abandoned": sum(q.abandoned for q in queues),
            "queued": sum(q.queued() for q in queues), "in_flight": sum(q._exporter.in_flight for q in queues)}
