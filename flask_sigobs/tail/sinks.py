"""Where lines leave: one by one (:class:`LineSink`) or summed into statistics (:class:`StatsSink`);
grouped by request is :mod:`requestsink`'s. What every sink shares is here too: a block's lines
worth parsing, and writing one block's output in order.

Each sink takes batches of raw lines. The loops are written out in full, with locals for what
they call, because this is where the time of every mode goes: a line that a byte-level
prefilter rejects costs tens of nanoseconds, one that is parsed costs a microsecond or two.
"""

from __future__ import annotations

from typing import Callable

from orjson import JSONDecodeError, loads

from .filters import FilterSet, _all_objects
from .output import Output
from .parallel import Pool, Slice, read_slice
from .records import parse
from .render import Renderer
from .stats import Stats

_CLEAR = "\x1b[H\x1b[2J"


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

    def feed_slice(self, piece: Slice) -> None:
        """A block of a regular file, by position: read by the worker that renders it."""
        if self.pool is not None:
            self.pool.submit(piece)
        else:
            self._write(*self._process(read_slice(piece)))

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
        lines = _block_lines(block, self.prefilter)
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
        _write_ordered(self.out, self.renderer, self.pool is not None, text, notices, first_divider, last_date)

    def tick(self, now: float) -> None:
        pass

    def finish(self, note: str) -> None:
        if self.pool is not None:
            self.pool.drain()

    def interrupt(self) -> None:
        """After Ctrl-C: nothing more (the lines shown are shown; the blocks in flight are not
        waited for)."""

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def _block_lines(block: bytes, prefilter: Callable[[bytes], list[bytes]] | None) -> list[bytes]:
    """A block's lines worth parsing: what the filters' prefilter keeps, or every line."""
    if prefilter is not None:
        return prefilter(block)
    lines = block.split(b"\n")
    lines.pop()
    return lines


def _encode(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8", "replace") if lines else b""


def _write_ordered(out: Output, renderer: Renderer, pooled: bool, text: bytes, notices: bytes,
                   first_divider: str | None, last_date: str) -> None:
    """Write one block's output; when it was rendered apart (in a worker), drop its first date
    line if that day had already been announced."""
    if pooled and first_divider is not None:
        if first_divider == renderer.current_date:
            text = text.replace(renderer.divider_text(first_divider).encode(), b"", 1)
        renderer.current_date = last_date or renderer.current_date
    if text:
        out.write(text)
    if notices:
        out.write_errors(notices)


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
        lines = _block_lines(block, self.prefilter)
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

    def interrupt(self) -> None:
        """After Ctrl-C: the table of what was read."""
        self.finish("")

    def close(self) -> None:
        pass
