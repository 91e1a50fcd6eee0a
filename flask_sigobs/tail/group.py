"""``--by-request``: the lines of each request gathered into one block, released when it ends.

Workers and threads interleave their lines in one file; a person wants one request at a time.
A request is the set of lines with one ``request.id`` (else one trace id). It is *open* from its
first line and *ends* with its ``flask.request_finished`` access line; then its block is
handed on. On an endless stream memory must stay bounded, so:

- a request open longer than the timeout is released anyway, flagged (a hung worker is worth
  seeing, not worth waiting for);
- at most ``max_open`` requests are open; past that the oldest is released, flagged;
- a request keeps at most ``max_lines`` lines (the access line is always kept), counting the rest;
- lines that arrive for a request that has already ended (teardown signals, a late log call)
  are recognised for a while and shown on their own instead of opening a phantom request.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from . import records as r
from .records import Record


@dataclass(eq=False)
class Request:
    """One request's lines, as they arrived, and what was learnt from them on the way."""

    key: str
    opened: float
    lines: list[bytes] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    end: Record | None = None
    dropped: int = 0
    matched: int = 0  # bit i set: filter i matched some line (see sinks.GroupSink)
    failed: bool = False  # a 5xx, an exception, a warning or worse

    def in_time_order(self) -> list[tuple[bytes, Record]]:
        """Lines sorted by timestamp (stable: lines of one instant keep their order)."""
        pairs = list(zip(self.lines, self.records))
        if len(pairs) < 2:
            return pairs
        stamps = [rec.get(r.TIMESTAMP) for rec in self.records]
        if all(type(s) is str for s in stamps) and any(a > b for a, b in zip(stamps, stamps[1:])):
            order = sorted(range(len(pairs)), key=stamps.__getitem__)
            pairs = [pairs[i] for i in order]
        return pairs


Emit = Callable[[Request, str], None]


class Grouper:
    """Open requests by key, in the order they opened (so the oldest is always first)."""

    def __init__(self, emit: Emit, *, timeout: float = 30.0, max_open: int = 10_000,
                 max_lines: int = 1_000, observe: Callable[[Request, Record], None] | None = None,
                 alone: Callable[[bytes, Record], None] | None = None) -> None:
        self.emit = emit
        self.alone = alone
        self.timeout = timeout
        self.max_open = max_open
        self.max_lines = max_lines
        self.observe = observe
        self.open: OrderedDict[str, Request] = OrderedDict()
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._ended_cap = 4096

    def add(self, line: bytes, record: Record, now: float) -> bool:
        """Take the line into its request; False when it belongs to none (or to one that has
        already ended): the caller shows it on its own."""
        key = r.request_key(record)
        if key is None:
            return False
        request = self.open.get(key)
        if request is None:
            if key in self._ended:
                return False
            if self.alone is not None and record.get(r.EVENT) == r.REQUEST_FINISHED:
                # a request whose only line is its access line (the usual case at level info):
                # released at once, without the bookkeeping of an open request
                self._ended[key] = None
                if len(self._ended) > self._ended_cap:
                    self._ended.popitem(last=False)
                self.alone(line, record)
                return True
            request = self.open[key] = Request(key, now)
            if len(self.open) > self.max_open:
                _, oldest = self.open.popitem(last=False)
                self._release(oldest, f"still open when more than {self.max_open} requests were")
        is_end = record.get(r.EVENT) == r.REQUEST_FINISHED
        if len(request.lines) < self.max_lines or is_end:
            request.lines.append(line)
            request.records.append(record)
        else:
            request.dropped += 1
        if self.observe is not None:
            self.observe(request, record)
        if is_end:
            request.end = record
            del self.open[key]
            self._release(request, "")
        return True

    def _release(self, request: Request, note: str) -> None:
        self._ended[request.key] = None
        if len(self._ended) > self._ended_cap:
            self._ended.popitem(last=False)
        self.emit(request, note)

    def expire(self, now: float) -> None:
        """Release the requests open for longer than the timeout."""
        deadline = now - self.timeout
        while self.open:
            key, request = next(iter(self.open.items()))
            if request.opened > deadline:
                break
            del self.open[key]
            self._release(request, f"no access line after {self.timeout:g}s")

    def close_all(self, note: str) -> None:
        """Release every open request (end of input, Ctrl-C)."""
        while self.open:
            _, request = self.open.popitem(last=False)
            self._release(request, note)
