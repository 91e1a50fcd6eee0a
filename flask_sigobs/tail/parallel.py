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


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


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
    """Blocks in, results out in the same order, through forked worker processes."""

    def __init__(self, work: Work, write: Callable[[bytes, bytes, str | None, str], None], *,
                 workers: int | None = None, window: int = 8) -> None:
        global _WORK
        import multiprocessing

        _WORK = work
        self.write = write
        self.window = window
        count = workers or min(os.cpu_count() or 2, 4)
        self._pool: Any = multiprocessing.get_context("fork").Pool(count, initializer=_ignore_interrupts)
        self._pending: deque[Any] = deque()

    def start(self, payload: Any) -> Any:
        """One piece of work, handed to a worker now; its result (``.get()``) comes later. For
        callers that keep their own order (see ``sinks.RequestSink``)."""
        return self._pool.apply_async(_run, (payload,))

    def submit(self, block: bytes) -> None:
        self._pending.append(self._pool.apply_async(_run, (block,)))
        while len(self._pending) > self.window or (self._pending and self._pending[0].ready()):
            self.write(*self._pending.popleft().get())

    def drain(self) -> None:
        while self._pending:
            self.write(*self._pending.popleft().get())

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()
