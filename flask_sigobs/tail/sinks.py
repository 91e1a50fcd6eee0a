"""The three ways lines leave: one by one, grouped by request, or summed into statistics.

Each sink takes batches of raw lines. The loops are written out in full, with locals for what
they call, because this is where the time of every mode goes: a line that a byte-level
prefilter rejects costs tens of nanoseconds, one that is parsed costs a microsecond or two.
"""

from __future__ import annotations

from typing import Callable

from orjson import JSONDecodeError, loads

from . import records as r
from .filters import FilterSet, _all_objects
from .group import Grouper, Request
from .output import Output
from .parallel import Pool
from .records import Record, parse
from .render import Renderer
from .stats import Stats

_CLEAR = "\x1b[H\x1b[2J"
_ONE: list[Record] = []  # the records of a request released with its access line alone


class LineSink:
    """Every line that passes the filters, rendered (or, with ``--json``, as it was)."""

    def __init__(self, out: Output, renderer: Renderer, filters: FilterSet, *, json: bool,
                 hide_raw: bool, parallel: bool = False) -> None:
        self.out = out
        self.renderer = renderer
        self.json = json
        self.hide_raw = hide_raw
        self.match = filters.matcher()
        self.prefilter = filters.prefilter()
        self.pool: Pool | None = None
        if parallel and not (json and (self.prefilter is not None or self.match is None)):
            out.flush()  # the workers are forked: nothing buffered may be copied into them
            self.pool = Pool(self._fresh, self._write)

    def feed(self, block: bytes, now: float) -> None:
        if self.pool is not None:
            self.pool.submit(block)
        else:
            self._write(*self._process(block))

    def _fresh(self, block: bytes) -> tuple[bytes, bytes, str | None, str]:
        """In a worker: a block rendered without knowing the date of the lines before it."""
        self.renderer.forget_date()
        return self._process(block)

    def _process(self, block: bytes) -> tuple[bytes, bytes, str | None, str]:
        """The block's output, its raw-line notices (for standard error), and the dates of the
        first divider written and of the last line (see :mod:`parallel`)."""
        match = self.match
        if self.json and match is None and _all_objects(block):
            return block, b"", None, ""  # --json without filters: the lines as they are
        if self.prefilter is not None:
            lines = self.prefilter(block)
        else:
            lines = block.split(b"\n")
            lines.pop()
        raws: list[bytes] = []
        if self.json:
            kept: list[bytes] = []
            keep = kept.append
            for line in lines:
                try:
                    record = loads(line)
                except JSONDecodeError:
                    record = parse(line)
                if type(record) is dict:
                    if match is None or match(record):
                        keep(line)
                elif line.strip():
                    raws.append(line)
            notices = b""
            if raws and not self.hide_raw:
                notices = _encode([self.renderer.raw(line) for line in raws])
            return (b"\n".join(kept) + b"\n" if kept else b""), notices, None, ""
        shown: list[str] = []
        show = shown.append
        render = self.renderer.record
        for line in lines:
            try:
                record = loads(line)
            except JSONDecodeError:
                record = parse(line)
            if type(record) is dict:
                if match is None or match(record):
                    show(render(record))
            elif line.strip() and not self.hide_raw:
                show(self.renderer.raw(line))
        return _encode(shown), b"", self.renderer.first_divider, self.renderer.current_date

    def _write(self, text: bytes, notices: bytes, first_divider: str | None, last_date: str) -> None:
        if first_divider is not None and self.pool is not None:
            if first_divider == self.renderer.current_date:  # the day had already been announced
                text = text.replace(self.renderer.divider_text(first_divider).encode(), b"", 1)
            self.renderer.current_date = last_date or self.renderer.current_date
        if text:
            self.out.write(text)
        if notices:
            self.out.write_errors(notices)

    def tick(self, now: float) -> None:
        pass

    def finish(self, note: str) -> None:
        if self.pool is not None:
            self.pool.drain()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def _encode(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8", "replace") if lines else b""


class RequestSink:
    """``--by-request`` and ``--errors``: whole requests, released when they end.

    Filters choose requests: a request is shown when every filter is matched by at least one of
    its lines (the user on the login line, the status on the access line). ``--level`` also
    trims the lines shown inside a block. Lines that belong to no request are filtered and
    shown on their own, as they come."""

    def __init__(self, out: Output, renderer: Renderer, filters: FilterSet, *, json: bool,
                 hide_raw: bool, errors_only: bool, blocks: bool, timeout: float, max_open: int) -> None:
        self.out = out
        self.renderer = renderer
        self.json = json
        self.hide_raw = hide_raw
        self.errors_only = errors_only
        self.blocks = blocks  # False with --errors alone: the request's lines, flat, together
        self.tests = [f.test for f in filters.filters]
        self.all_matched = (1 << len(self.tests)) - 1
        self.match_line = filters.matcher()
        self.trim = filters.matcher(filters.per_line)
        needs_observing = bool(self.tests) or errors_only
        self.grouper = Grouper(self._emit, timeout=timeout, max_open=max_open,
                               observe=self._observe if needs_observing else None, alone=self._alone)
        self._pending_text: list[str] = []
        self._pending_raw: list[bytes] = []

    def _observe(self, request: Request, record: Record) -> None:
        if request.matched != self.all_matched:
            for index, test in enumerate(self.tests):
                bit = 1 << index
                if not request.matched & bit and test(record):
                    request.matched |= bit
        if self.errors_only and not request.failed:
            status = r.status_of(record)
            rank = r.level_rank(record)
            if (status is not None and status >= 500) or (rank is not None and rank >= r.WARNING) \
                    or r.has_exception(record):
                request.failed = True

    def _emit(self, request: Request, note: str) -> None:
        if request.matched != self.all_matched:
            return
        timed_out = note.startswith("no access line after")
        if self.errors_only and not (request.failed or timed_out):
            return
        pairs = request.in_time_order()
        if self.trim is not None:
            pairs = [(line, record) for line, record in pairs if record is request.end or self.trim(record)]
        if self.json:
            self._pending_raw.extend(line for line, _ in pairs)
        elif self.blocks:
            self._pending_text.append(self.renderer.block([rec for _, rec in pairs], request.end, note,
                                                          request.dropped))
        else:
            render = self.renderer.record
            self._pending_text.extend(render(rec) for _, rec in pairs)

    def _alone(self, line: bytes, record: Record) -> None:
        """A request of one line, its access line: the same decisions as :meth:`_emit`, made
        on that line alone."""
        if self.match_line is not None and not self.match_line(record):
            return
        if self.errors_only:
            status = r.status_of(record)
            rank = r.level_rank(record)
            if not ((status is not None and status >= 500) or (rank is not None and rank >= r.WARNING)):
                return
        if self.json:
            self._pending_raw.append(line)
        elif self.blocks:
            self._pending_text.append(self.renderer.header(_ONE, record))
        else:
            self._pending_text.append(self.renderer.record(record))

    def _single(self, line: bytes, record: Record) -> None:
        if self.match_line is not None and not self.match_line(record):
            return
        if self.errors_only:
            rank = r.level_rank(record)
            if not ((rank is not None and rank >= r.WARNING) or r.has_exception(record)):
                return
        if self.json:
            self._pending_raw.append(line)
        else:
            self._pending_text.append(self.renderer.record(record))

    def feed(self, block: bytes, now: float) -> None:
        lines = block.split(b"\n")
        lines.pop()
        add = self.grouper.add
        raws: list[bytes] = []
        for line in lines:
            try:
                record = loads(line)
            except JSONDecodeError:
                record = parse(line)
            if type(record) is dict:
                if not add(line, record, now):
                    self._single(line, record)
            elif line.strip() and not self.hide_raw:
                if self.json:
                    raws.append(line)
                else:
                    self._pending_text.append(self.renderer.raw(line))
        self._write()
        if raws:
            self.out.error_text([self.renderer.raw(line) for line in raws])

    def _write(self) -> None:
        if self._pending_text:
            text, self._pending_text = self._pending_text, []
            self.out.text(text)
        if self._pending_raw:
            raw, self._pending_raw = self._pending_raw, []
            self.out.raw(raw)

    def tick(self, now: float) -> None:
        self.grouper.expire(now)
        self._write()

    def finish(self, note: str) -> None:
        self.grouper.close_all(note)
        self._write()

    def close(self) -> None:
        pass


class StatsSink:
    """``--stats``: counts, not lines; the table at the end, or every few seconds with ``-f``."""

    def __init__(self, out: Output, renderer: Renderer, filters: FilterSet, *, live: bool,
                 interval: float, clear: bool, clock_now: Callable[[], float]) -> None:
        self.out = out
        self.renderer = renderer
        self.match = filters.matcher()
        self.prefilter = filters.prefilter()
        self.stats = Stats()
        self.live = live
        self.interval = interval
        self.clear = clear
        self.next_report = clock_now() + interval
        self.changed = True

    def feed(self, block: bytes, now: float) -> None:
        if self.prefilter is not None:
            lines = self.prefilter(block)
        else:
            lines = block.split(b"\n")
            lines.pop()
        match = self.match
        add = self.stats.add
        for line in lines:
            try:
                record = loads(line)
            except JSONDecodeError:
                record = parse(line)
            if type(record) is dict:
                if match is None or match(record):
                    add(record)
            elif line.strip():
                self.stats.add_raw()
        self.changed = True
        if self.live and now >= self.next_report:
            self.report(now)

    def report(self, now: float) -> None:
        self.next_report = now + self.interval
        self.changed = False
        table = self.stats.render(self.renderer.p, self.renderer.clock)
        self.out.text([(_CLEAR if self.clear else "") + table + ("" if self.clear else "\n")])
        self.out.flush()

    def tick(self, now: float) -> None:
        if self.live and now >= self.next_report and self.changed:
            self.report(now)

    def finish(self, note: str) -> None:
        table = self.stats.render(self.renderer.p, self.renderer.clock)
        self.out.text([table])

    def close(self) -> None:
        pass
