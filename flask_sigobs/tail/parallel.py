"""Rendering a large file on every core: blocks go to worker processes, come back in order.

Parsing and rendering are per line and independent, so a big backlog (reading a whole file, not
following it) splits cleanly into blocks. Python threads would share one interpreter lock, so
the workers are processes, forked: they inherit the sink already built (filters, renderer) and
send back only bytes. What they receive is either bytes or, for a regular file, just where a
block of it lies (:class:`Slice`): the worker reads the block itself, so the file's contents do
not go through the parent and a pipe on their way. At most ``window`` blocks are in flight, so a
huge file never sits in memory. Only the order-dependent bit, the date divider line, is settled
here: each worker starts a block not knowing the date before it, so it always writes the
divider, and the first one is dropped when that date was already the current one.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from typing import Any, Callable, NamedTuple

Work = Callable[[bytes], tuple[bytes, bytes, str | None, str]]

_WORK: Work | None = None  # set in the parent just before forking; the workers inherit it


class Slice(NamedTuple):
    """Where a block of whole lines lies in a regular file."""

    path: str
    start: int
    length: int


_FILES: dict[str, int] = {}  # in a worker: the files it has open, by path


def read_slice(piece: Slice) -> bytes:
    fd = _FILES.get(piece.path)
    if fd is None:
        fd = _FILES[piece.path] = os.open(piece.path, os.O_RDONLY)
    data = os.pread(fd, piece.length, piece.start)
    return data if data.endswith(b"\n") or not data else data + b"\n"


def _run(payload: Any) -> tuple[bytes, bytes, str | None, str]:
    assert _WORK is not None
    if type(payload) is Slice:
        payload = read_slice(payload)
    return _WORK(payload)


def worth_it(total_bytes: int) -> bool:
    """A pool costs tens of milliseconds to start: only for big inputs, on more than one core."""
    return total_bytes >= 16 << 20 and (os.cpu_count() or 1) > 1


class Pool:
    """Blocks in, results out in the same order, through :class:`Workers`: at most ``window``
    blocks in flight, each result written as soon as those before it are."""

    def __init__(self, work: Work, write: Callable[[bytes, bytes, str | None, str], None], *,
                 workers: int | None = None, window: int = 8) -> None:
        self.write = write
        self.window = window
        self._workers = Workers(work, workers=workers)
        self._pending: deque[Handle] = deque()

    def submit(self, block: bytes | Slice) -> None:
        pending = self._pending
        pending.append(self._workers.start(block))
        while len(pending) > self.window or (pending and pending[0].ready()):
            self.write(*pending.popleft().get())

    def drain(self) -> None:
        while self._pending:
            self.write(*self._pending.popleft().get())

    def close(self) -> None:
        self._workers.close()
        self._pending.clear()


class Workers:
    """Forked worker processes, each fed through its own pipe, for callers that keep their own
    order (see ``requestsink.RequestSink``): :meth:`start` hands a piece of work to the least busy
    worker and returns a handle whose :meth:`Handle.get` is its result.

    No threads here, unlike ``multiprocessing.Pool``, whose worker-watching thread wakes on
    every chunk of a result still in the pipe (about a third of a core with results of a few
    hundred kilobytes), and whose ``terminate`` can hang after Ctrl-C (its task thread waiting
    on a lock for good). Each worker reads its pipe on a thread of its own, so the parent's
    sending never waits on a worker busy sending a result back."""

    def __init__(self, work: Callable[[Any], Any], *, workers: int | None = None) -> None:
        global _WORK
        import multiprocessing

        _WORK = work  # type: ignore[assignment]
        context = multiprocessing.get_context("fork")
        count = workers or min(os.cpu_count() or 2, 4)
        self._tasks: list[Any] = []
        self._results: list[Any] = []
        self._processes: list[Any] = []
        self._waiting: list[deque[Handle]] = []
        self._load = [0] * count
        # Born ignoring Ctrl-C, which is the parent's to handle (a terminal sends it to them all).
        interrupts = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for _ in range(count):
                task_out, task_in = context.Pipe(duplex=False)  # (reader, writer)
                result_out, result_in = context.Pipe(duplex=False)
                _widen(result_in.fileno())
                _widen(task_in.fileno())
                parents_ends = [*self._tasks, *self._results, task_in, result_out]
                process = context.Process(target=_serve, args=(task_out, result_in, parents_ends), daemon=True)
                process.start()
                task_out.close()
                result_in.close()
                self._tasks.append(task_in)
                self._results.append(result_out)
                self._processes.append(process)
                self._waiting.append(deque())
        finally:
            signal.signal(signal.SIGINT, interrupts)

    def start(self, payload: Any, weight: int = 1) -> "Handle":
        for worker, waiting in enumerate(self._waiting):  # what is done no longer counts
            while waiting and self._results[worker].poll():
                self._receive(worker)
        load = self._load
        worker = load.index(min(load))
        load[worker] += weight
        handle = Handle(self, worker, weight)
        self._waiting[worker].append(handle)
        self._tasks[worker].send(payload)
        return handle

    def _receive(self, worker: int) -> None:
        value = self._results[worker].recv()
        handle = self._waiting[worker].popleft()
        handle.value = value
        handle.done = True
        self._load[worker] -= handle.weight

    def close(self) -> None:
        """Stop the workers at once (as ``Pool.terminate``): at the end they have nothing left to
        do, and after a closed pipe or Ctrl-C what they still hold is not wanted."""
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            process.join()
        for connection in (*self._tasks, *self._results):
            connection.close()


def _widen(fd: int) -> None:
    """A pipe holding a whole result (Linux): the worker writes it at once, the parent reads it at
    once, instead of both taking turns over 64 KB."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (OSError, ImportError, ValueError):
        pass


class Handle:
    """The result of a piece of work given to :class:`Workers`, when it comes."""

    __slots__ = ("workers", "worker", "weight", "value", "done")

    def __init__(self, workers: Workers, worker: int, weight: int) -> None:
        self.workers = workers
        self.worker = worker
        self.weight = weight
        self.value: Any = None
        self.done = False

    def ready(self) -> bool:
        if self.done:
            return True
        workers = self.workers
        return workers._waiting[self.worker][0] is self and workers._results[self.worker].poll()

    def get(self) -> Any:
        workers = self.workers
        while not self.done:
            workers._receive(self.worker)
        if type(self.value) is _Failed:
            raise RuntimeError(f"a sigobs tail worker failed:\n{self.value.text}")
        return self.value


class _Failed(NamedTuple):
    text: str


def _serve(tasks: Any, results: Any, parents_ends: list[Any]) -> None:
    """A worker: takes work from its pipe and sends back each result, in order, each on a thread
    of its own: the parent can always send, and the work goes on while a result waits for the
    parent to read it. The copies of the parent's ends of the pipes that forking gave it are
    closed first, so that when the parent is gone, however it went, its pipe ends and it exits."""
    import queue
    import threading
    import traceback

    for connection in parents_ends:
        connection.close()
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def read() -> None:
        while True:
            try:
                task = tasks.recv()
            except Exception:  # noqa: BLE001 - the parent has gone, or stopped half way
                task = None
            inbox.put(task)
            if task is None:
                return

    outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def write() -> None:
        while (result := outbox.get()) is not None:
            try:
                results.send(result)
            except OSError:
                return

    threading.Thread(target=read, daemon=True).start()
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    while (task := inbox.get()) is not None:
        try:
            result = _run(task)
        except Exception:  # noqa: BLE001 - reported in the parent, where it is raised
            result = _Failed(traceback.format_exc())
        outbox.put(result)
    outbox.put(None)
    writer.join()
