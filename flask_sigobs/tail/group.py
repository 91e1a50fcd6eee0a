"""``--by-request``: the lines of each request gathered into one block, released when it ends.

Workers and threads interleave their lines in one file; a person wants one request at a time.
A request is the set of lines with one ``request.id`` (else one trace id). It is *open* from its
first line and *ends* with its ``flask.request_finished`` access line; then its lines are handed
on, as one item, to be parsed and rendered together.

Grouping works on raw bytes: the key and whether the line is the access line are read straight
from the line (``"request.id":"..."``, ``"event":"flask.request_finished"``), which costs a few
``find`` calls instead of a parse, so that parsing and rendering, the expensive part, can be done
per finished request, on other cores. A line whose shape leaves any doubt is parsed instead.

On an endless stream memory must stay bounded, so:

- a request open longer than the timeout is released anyway, flagged (a hung worker is worth
  seeing, not worth waiting for);
- at most ``max_open`` requests are open; past that the oldest is released, flagged;
- a request keeps at most ``max_lines`` lines (the access line is always kept), counting the rest;
- lines that arrive for a request that has already ended (teardown signals, a late log call)
  are recognised for a while and shown on their own instead of opening a phantom request.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from typing import NamedTuple, Protocol

from . import records as r

# What grouping hands on, in order: a finished (or released) request, a line of no request
# (or of one already ended), a line that is not a JSON object.
BLOCK, SINGLE, RAW = 0, 1, 2


class Emit(Protocol):
    def block(self, lines: list[bytes], note: str, dropped: int) -> None: ...

    def one(self, kind: int, line: bytes) -> None: ...

_REQUEST_ID = b'"request.id":"'
_TRACE_ID = b'"trace_id":"'
_FINISHED = b'"event":"' + r.REQUEST_FINISHED.encode() + b'"'
_FINISHED_VALUE = r.REQUEST_FINISHED.encode() + b'"'


def key_of(line: bytes) -> tuple[bytes | None, bool] | None:
    """(request key, is the access line) read from the bytes; None when only parsing can tell
    (spaces after the colons, an escaped id).

    Cheap on purpose: the id is looked for from the end (our lines end with it) and the event
    near the start (it is the third key), so most lines are scanned over a few dozen bytes. A
    line that fools this (the same key nested inside a value) is caught where the request is
    parsed, and shown on its own (see ``requestsink.RequestSink``), never lost."""
    at = line.rfind(_REQUEST_ID)
    if at >= 0:
        start = at + 14  # len(_REQUEST_ID)
        end = line.find(b'"', start)
        key = line[start:end]
        if not key or b"\\" in key:
            return None
    else:
        at = line.rfind(_TRACE_ID)
        if at < 0:
            if b'"request.id"' in line or b'"trace_id"' in line:
                return None
            key = None
        else:
            start = at + 12  # len(_TRACE_ID)
            end = line.find(b'"', start)
            key = line[start:end]
            if not key or b"\\" in key:
                return None
            key = b"t:" + key
    at = line.find(b'"event":"', 0, 120)
    if at >= 0:
        return key, line.startswith(_FINISHED_VALUE, at + 9)
    if b'"event"' in line and b'"event":"' not in line:
        return None  # another spelling of the key: let the parser say
    return key, _FINISHED in line


def key_of_record(record: r.Record) -> tuple[bytes | None, bool]:
    """The same, from a parsed line."""
    key = r.request_key(record)
    return (key.encode("utf-8", "surrogatepass") if key is not None else None,
            record.get(r.EVENT) == r.REQUEST_FINISHED)


class Request:
    """One open request: its raw lines, as they arrived."""

    __slots__ = ("key", "opened", "lines", "dropped")

    def __init__(self, key: bytes, opened: float) -> None:
        self.key = key
        self.opened = opened
        self.lines: list[bytes] = []
        self.dropped = 0


class Grouper:
    """Open requests by key, in the order they opened (so the oldest is always first)."""

    def __init__(self, emit: Emit, *, timeout: float = 30.0, max_open: int = 10_000,
                 max_lines: int = 1_000) -> None:
        self.emit = emit
        self.timeout = timeout
        self.max_open = max_open
        self.max_lines = max_lines
        self.open: OrderedDict[bytes, Request] = OrderedDict()
        self._ended: OrderedDict[bytes, None] = OrderedDict()
        self._ended_cap = 4096

    def add(self, line: bytes, key: bytes | None, is_end: bool, now: float) -> None:
        if key is None:
            self.emit.one(SINGLE, line)
            return
        request = self.open.get(key)
        if request is None:
            if key in self._ended:
                self.emit.one(SINGLE, line)  # late: its request has already been shown
                return
            if is_end:  # a request whose only line is its access line: the usual case at info
                self._ended[key] = None
                if len(self._ended) > self._ended_cap:
                    self._ended.popitem(last=False)
                self.emit.block([line], "", 0)
                return
            request = self.open[key] = Request(key, now)
            if len(self.open) > self.max_open:
                _, oldest = self.open.popitem(last=False)
                self._release(oldest, f"still open when more than {self.max_open} requests were")
        if len(request.lines) < self.max_lines or is_end:
            request.lines.append(line)
        else:
            request.dropped += 1
        if is_end:
            del self.open[key]
            self._release(request, "")

    def _release(self, request: Request, note: str) -> None:
        self._ended[request.key] = None
        if len(self._ended) > self._ended_cap:
            self._ended.popitem(last=False)
        self.emit.block(request.lines, note, request.dropped)

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


def in_time_order(pairs: list[tuple[bytes, r.Record]]) -> list[tuple[bytes, r.Record]]:
    """Lines sorted by timestamp (stable: lines of one instant keep their order)."""
    if len(pairs) < 2:
        return pairs
    stamps = [record.get(r.TIMESTAMP) for _, record in pairs]
    if all(type(s) is str for s in stamps) and any(a > b for a, b in zip(stamps, stamps[1:])):
        order = sorted(range(len(pairs)), key=stamps.__getitem__)
        return [pairs[i] for i in order]
    return pairs


class Local(NamedTuple):
    """A block grouped on its own, as if no request were open before it (see :func:`group_local`).

    Items in release order, as line numbers: ``order`` (the lines of every item, one after the
    other), ``kinds`` and ``counts`` per item; ``cr``, the lines given without their final
    ``\\r``; ``ended``, the keys of the requests that ended, in order, and ``ended_at``, the item
    each one is; ``still_open``, the requests open at the end (key and lines, in the order they
    opened); ``peak``, the most requests open at once."""

    order: bytes
    kinds: bytes
    counts: bytes
    cr: list[int]
    ended: list[bytes]
    ended_at: bytes
    still_open: list[tuple[bytes, list[bytes]]]
    peak: int


def group_local(lines: list[bytes], ended_cap: int) -> Local:
    """Group the lines of one block from a fresh start, by line number, with no limit on lines
    per request or on open requests (the caller applies both: it knows what came before).

    What the block does to a request that was already open before it (its lines are added, it
    ends at the same line) and to every request that starts in it is the same as in
    :class:`Grouper` fed the same lines after the blocks before; only a key that had *ended*
    before the block behaves differently, so the caller checks ``ended`` and ``still_open``
    against the keys it remembers. Late lines within the block are recognised exactly: a key
    leaves the memory of ended requests after ``ended_cap`` later ones, whatever came before."""
    order = array("I")
    kinds = bytearray()
    counts = array("I")
    cr: list[int] = []
    ended: list[bytes] = []
    ended_at = array("I")
    opened: dict[bytes, list[int]] = {}
    recent: dict[bytes, int] = {}  # key: how many requests had ended before it did
    put = order.append
    put_kind = kinds.append
    put_count = counts.append
    peak = 0
    for index, line in enumerate(lines):
        if line[-1:] != b"}" or line[:1] != b"{":
            if line[-2:] == b"}\r" and line[:1] == b"{":
                line = line[:-1]
                cr.append(index)
            elif line.strip():
                put(index)
                put_kind(RAW)
                put_count(1)
                continue
            else:
                continue
        # key_of's usual case, inlined: a request.id without escapes, the event near the start
        at = line.rfind(_REQUEST_ID)
        key = None
        if at >= 0:
            key = line[at + 14:line.find(b'"', at + 14)]
            at = line.find(b'"event":"', 0, 120)
            if at >= 0 and key and b"\\" not in key:
                is_end = line.startswith(_FINISHED_VALUE, at + 9)
            else:
                key = None
        if key is None:
            found = key_of(line)
            if found is None:
                record = r.parse(line)
                if record is None:
                    put(index)
                    put_kind(RAW)
                    put_count(1)
                    continue
                found = key_of_record(record)
            key, is_end = found
        if key is None:
            put(index)
            put_kind(SINGLE)
            put_count(1)
            continue
        request = opened.get(key)
        if request is None:
            number = recent.get(key)
            if number is not None and len(ended) - number <= ended_cap:  # late: it has ended
                put(index)
                put_kind(SINGLE)
                put_count(1)
                continue
            if not is_end:
                opened[key] = [index]
                if len(opened) > peak:
                    peak = len(opened)
                continue
            # a request of its access line alone: the usual case
            recent[key] = len(ended)
            ended.append(key)
            ended_at.append(len(kinds))
            put(index)
            put_kind(BLOCK)
            put_count(1)
            continue
        else:
            request.append(index)
            if not is_end:
                continue
            del opened[key]
        recent[key] = len(ended)  # remembered until ended_cap more requests have ended
        ended.append(key)
        ended_at.append(len(kinds))
        order.extend(request)
        put_kind(BLOCK)
        put_count(len(request))
    crs = set(cr)
    still_open = [(key, [lines[i][:-1] if i in crs else lines[i] for i in numbers])
                  for key, numbers in opened.items()]
    return Local(order.tobytes(), bytes(kinds), counts.tobytes(), cr, ended, ended_at.tobytes(), still_open, peak)
