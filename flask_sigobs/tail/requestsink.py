"""``--by-request`` and ``--errors``: lines grouped by request, each request shown whole when it ends.

Grouping (on raw bytes, see :mod:`group`) happens in this process, in order; rendering what it
releases happens here or, for a big file, in worker processes (:mod:`parallel`), with the same
code either way. The loops are written out in full, with locals for what they call: this is
where the time of ``--by-request`` goes (see :mod:`sinks`).
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from itertools import accumulate
from typing import Any

from orjson import JSONDecodeError, loads

from . import records as r
from .filters import FilterSet
from .group import BLOCK, RAW, SINGLE, Grouper, Local, Request, group_local, in_time_order, key_of, key_of_record
from .output import Output
from .parallel import Slice, Workers, read_slice
from .records import Record, parse
from .render import Renderer
from .sinks import _encode, _write_ordered


class RequestSink:
    """``--by-request`` and ``--errors``: whole requests, released when they end.

    Filters choose requests: a request is shown when every filter is matched by at least one of
    its lines (the user on the login line, the status on the access line). ``--level`` also
    trims the lines shown inside a block. Lines that belong to no request are filtered and
    shown on their own, as they come.

    Grouping (on raw bytes, see :mod:`group`) happens here, in order; what grouping releases is
    a list of items that :meth:`render_items` turns into output, here or, for a big file, in
    worker processes: the same code either way. For a big file the workers group too, each its
    own block, joined here in order (see :meth:`_join`)."""

    def __init__(self, out: Output, renderer: Renderer, filters: FilterSet, *, json: bool,
                 hide_raw: bool, errors_only: bool, blocks: bool, timeout: float, max_open: int,
                 parallel: bool = False) -> None:
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
        self._batch = _Batch()
        self.grouper = Grouper(self._batch, timeout=timeout, max_open=max_open)
        self.pool: Workers | None = None
        if parallel:
            out.flush()  # the workers are forked: nothing buffered may be copied into them
            self.pool = Workers(self._work)
        self._grouping: deque[tuple[bytes | Slice, Any]] = deque()
        self._rendering: deque[Any] = deque()

    # -- in this process: grouping -------------------------------------------------------------

    def feed(self, block: bytes, now: float) -> None:
        if self.pool is not None:
            self._start_group(block)
        else:
            self._group(block, now)
            self._dispatch()

    def _group(self, block: bytes, now: float) -> None:
        lines = block.split(b"\n")
        lines.pop()
        grouper = self.grouper
        add = grouper.add
        opened = grouper.open
        ended = grouper._ended
        ended_cap = grouper._ended_cap
        forget_oldest = ended.popitem
        batch = self._batch
        one = batch.one
        keep_line = batch.lines.append
        keep_kind = batch.kinds.append
        keep_count = batch.counts.append
        for line in lines:
            if line[-1:] != b"}" or line[:1] != b"{":
                if line[-2:] == b"}\r" and line[:1] == b"{":
                    line = line[:-1]
                elif line.strip():
                    one(RAW, line)
                    continue
                else:
                    continue
            found = key_of(line)
            if found is None:
                record = parse(line)
                if record is None:
                    one(RAW, line)
                    continue
                found = key_of_record(record)
            key, is_end = found
            if is_end and key is not None and key not in opened and key not in ended:
                # Grouper.add's usual case, inlined: a request of its access line alone
                ended[key] = None
                if len(ended) > ended_cap:
                    forget_oldest(last=False)
                keep_line(line)
                keep_kind(BLOCK)
                keep_count(1)
                continue
            add(line, key, is_end, now)

    # -- grouping a big file on every core ---------------------------------------------------
    #
    # Each block is first grouped on its own, in a worker, from a fresh start (group.group_local),
    # which says which lines make which item and which requests it leaves open. Here, in block
    # order, that is joined to what came before: a request open before the block and ending in it
    # gets its earlier lines (``patches``), the requests still open are kept, the keys that ended
    # are remembered. Then a worker renders the block's items from the block's own bytes (read
    # again from the file). The result is the very batch grouping here would have made. A block
    # for which the join would not be exact (a line of a request that ended before the block, or
    # more requests open than ``max_open`` allows) is grouped here instead, the plain way.

    def feed_slice(self, piece: Slice) -> None:
        """A block of a regular file, by position: the very block :meth:`feed` would be given."""
        if self.pool is not None:
            self._start_group(piece)
        else:
            self.feed(read_slice(piece), time.monotonic())

    def _start_group(self, payload: bytes | Slice) -> None:
        assert self.pool is not None
        self._grouping.append((payload, self.pool.start(("group", payload), 1)))
        self._pump(False)

    def _pump(self, everything: bool) -> None:
        grouping = self._grouping
        rendering = self._rendering
        window = 8
        while grouping and (everything or len(grouping) > window or grouping[0][1].ready()):
            payload, result = grouping.popleft()
            self._join(payload, result.get())
        while rendering and (everything or len(rendering) > window or rendering[0].ready()):
            self._write(*rendering.popleft().get())

    def _join(self, payload: bytes | Slice, local: Local) -> None:
        assert self.pool is not None
        grouper = self.grouper
        opened = grouper.open
        ended = grouper._ended
        keys = set(local.ended)
        count = len(keys)
        keys.update(key for key, _ in local.still_open)
        if len(opened) + local.peak > grouper.max_open or not ended.keys().isdisjoint(keys):
            self._group(read_slice(payload) if type(payload) is Slice else payload, time.monotonic())
            self._dispatch()
            return
        max_lines = grouper.max_lines
        patches: dict[int, tuple[list[bytes], int]] = {}
        merged: set[bytes] = set()
        if opened:
            ended_at = array("I", local.ended_at)
            still_open = dict(local.still_open)
            for key in opened.keys() & keys:
                request = opened[key]
                if key in local.ended:  # ends in this block: its earlier lines go with it
                    patches[ended_at[local.ended.index(key)]] = (request.lines, request.dropped)
                    del opened[key]
                else:  # still open: its lines of this block added to the earlier ones
                    more = still_open[key]
                    room = max(max_lines - len(request.lines), 0)
                    request.lines.extend(more[:room])
                    request.dropped += max(len(more) - room, 0)
                    merged.add(key)
        now = time.monotonic()
        for key, lines in local.still_open:
            if key in merged:
                continue
            request = opened[key] = Request(key, now)
            request.lines = lines[:max_lines]
            request.dropped = len(lines) - len(request.lines)
        if count == len(local.ended):
            ended.update(dict.fromkeys(local.ended))
            forget_oldest = ended.popitem
            for _ in range(len(ended) - grouper._ended_cap):
                forget_oldest(last=False)
        else:  # a key ended twice in the block (forgotten in between): one at a time, in order
            for key in local.ended:
                ended[key] = None
                if len(ended) > grouper._ended_cap:
                    ended.popitem(last=False)
        task = (payload, local.order, local.kinds, local.counts, local.cr, patches)
        self._rendering.append(self.pool.start(("render", task), 4))

    def _render_block(self, task: Any) -> tuple[bytes, bytes, str | None, str]:
        """In a worker: a block's items (see :meth:`_join`), rendered from the block's bytes."""
        payload, order, kinds, counts, cr, patches = task
        data = read_slice(payload) if type(payload) is Slice else payload
        every = data.split(b"\n")
        every.pop()
        for index in cr:
            every[index] = every[index][:-1]
        lines = list(map(every.__getitem__, array("I", order)))
        numbers = array("I", counts)
        notes: dict[int, tuple[str, int]] = {}
        max_lines = self.grouper.max_lines
        if numbers and max(numbers) > max_lines + 1:  # a request past its line limit: item by item
            capped: list[bytes] = []
            capped_numbers = array("I")
            at = 0
            for item, kind in enumerate(kinds):
                number = numbers[item]
                lines_of = lines[at:at + number]
                at += number
                if kind == BLOCK:
                    before, dropped = patches.get(item, _NO_LINES)
                    body = lines_of[:-1]
                    room = max(max_lines - len(before), 0)
                    dropped += max(len(body) - room, 0)
                    lines_of = [*before, *body[:room], lines_of[-1]]
                    if dropped:
                        notes[item] = ("", dropped)
                capped.extend(lines_of)
                capped_numbers.append(len(lines_of))
            lines, numbers = capped, capped_numbers
        elif patches:  # only the few requests that began in a block before: their earlier lines
            starts = list(accumulate(numbers, initial=0))
            pieces: list[bytes] = []
            at = 0
            for item in sorted(patches):
                before, dropped = patches[item]
                start = starts[item]
                end = start + numbers[item]
                body = lines[start:end - 1]
                room = max(max_lines - len(before), 0)
                dropped += max(len(body) - room, 0)
                pieces += lines[at:start]
                pieces += before
                pieces += body[:room]
                pieces.append(lines[end - 1])
                at = end
                numbers[item] = len(before) + min(len(body), room) + 1
                if dropped:
                    notes[item] = ("", dropped)
            pieces += lines[at:]
            lines = pieces
        self.renderer.forget_date()
        return self.render_items((lines, kinds, numbers, notes))

    def _dispatch(self) -> None:
        batch = self._batch
        if not batch.kinds:
            return
        # Emptied once its output is made, before it is written: after Ctrl-C, which can strike
        # between any two lines, no request is shown twice.
        if self.pool is not None:  # one bytes object and two small arrays: cheap to send
            task = (b"\n".join(batch.lines), bytes(batch.kinds), batch.counts.tobytes(), batch.notes)
            batch.clear()
            self._rendering.append(self.pool.start(("batch", task), 4))
        else:
            output = self.render_items((batch.lines, batch.kinds, batch.counts, batch.notes))
            batch.clear()
            self._write(*output)

    def tick(self, now: float) -> None:
        self.grouper.expire(now)
        self._dispatch()

    def finish(self, note: str) -> None:
        if self.pool is not None:
            self._pump(True)
        self.grouper.close_all(note)
        self._dispatch()
        if self.pool is not None:
            self._pump(True)

    def interrupt(self) -> None:
        """After Ctrl-C: the requests still open, flagged. The workers are stopped first, and what
        they hold is dropped: the interrupt may have struck inside their bookkeeping (a piece
        counted as sent but never sent), so nothing more is waited for from them."""
        self.close()
        self._batch.settle()  # the interrupt may have struck between an item's appends
        self.finish("interrupted before its access line")

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        self._grouping.clear()
        self._rendering.clear()

    def _write(self, text: bytes, notices: bytes, first_divider: str | None, last_date: str) -> None:
        _write_ordered(self.out, self.renderer, self.pool is not None, text, notices, first_divider, last_date)

    # -- here or in a worker: parsing, choosing, rendering -------------------------------------

    def _work(self, task: Any) -> Any:
        """In a worker: what the parent asked for (see :meth:`_join`)."""
        what, payload = task
        if what == "group":
            data = read_slice(payload) if type(payload) is Slice else payload
            lines = data.split(b"\n")
            lines.pop()
            return group_local(lines, self.grouper._ended_cap)
        if what == "render":
            return self._render_block(payload)
        return self._fresh(payload)

    def _fresh(self, batch: Any) -> tuple[bytes, bytes, str | None, str]:
        blob, kinds, counts, notes = batch
        lines = blob.split(b"\n")
        self.renderer.forget_date()
        return self.render_items((lines, kinds, array("I", counts), notes))

    def render_items(self, batch: Any) -> tuple[bytes, bytes, str | None, str]:
        """Output for a batch (lines; per item its kind and number of lines; notes of released
        requests by item), in order: (text, notices for standard error, first and last date
        shown)."""
        lines, kinds, counts, notes = batch
        self.renderer.first_divider = None
        text: list[str] = []
        raw_out: list[bytes] = []
        notices: list[str] = []
        at = 0
        fast = (not (self.json or self.errors_only or self.match_line is not None or self.trim is not None)
                and self.blocks)
        header = self.renderer.access_header
        block = self.renderer.block
        for index, kind in enumerate(kinds):
            count = counts[index]
            if kind == BLOCK:
                if fast and count > 1:  # no filter: what _request does, without its choices
                    records = _same_request(lines[at:at + count])
                    if records is not None:
                        last = records[-1]
                        note, dropped = notes.get(index, _NO_NOTE)
                        text.append(block(records, last if last.get("event") == "flask.request_finished" else None,
                                          note, dropped))
                        at += count
                        continue
                if fast and count == 1 and index not in notes:  # a request of one access line
                    line = lines[at]
                    try:
                        record = loads(line)
                    except JSONDecodeError:
                        record = parse(line)
                    if type(record) is dict and record.get("event") == "flask.request_finished":
                        text.append(header(record))
                        at += 1
                        continue
                note, dropped = notes.get(index, _NO_NOTE)
                self._request(lines[at:at + count], note, dropped, text, raw_out, notices)
            else:
                line = lines[at]
                record = parse(line) if kind == SINGLE else None
                if record is not None:
                    self._single(line, record, text, raw_out)
                elif not self.hide_raw:
                    (notices if self.json else text).append(self.renderer.raw(line))
            at += count
        body = b"\n".join(raw_out) + b"\n" if raw_out else _encode(text)
        return body, _encode(notices), self.renderer.first_divider, self.renderer.current_date

    def _failed(self, record: Record) -> bool:
        status = r.status_of(record)
        rank = r.level_rank(record)
        return ((status is not None and status >= 500) or (rank is not None and rank >= r.WARNING)
                or r.has_exception(record))

    def _request(self, lines: list[bytes], note: str, dropped: int, text: list[str],
                 raw_out: list[bytes], notices: list[str]) -> None:
        if len(lines) == 1 and not dropped:  # the usual request at level info: its access line alone
            line = lines[0]
            try:
                record = loads(line)
            except JSONDecodeError:
                record = parse(line)
            if type(record) is dict and record.get(r.EVENT) == r.REQUEST_FINISHED:
                if self.match_line is not None and not self.match_line(record):
                    return
                if self.errors_only and not self._failed(record):
                    return
                if self.json:
                    raw_out.append(line)
                elif self.blocks:
                    text.append(self.renderer.header(_ALONE, record, note))
                else:
                    text.append(self.renderer.record(record))
                return
        pairs: list[tuple[bytes, Record]] = []
        for line in lines:
            try:
                record = loads(line)
            except JSONDecodeError:
                record = parse(line)
            if type(record) is dict:
                pairs.append((line, record))
            elif not self.hide_raw:
                (notices if self.json else text).append(self.renderer.raw(line))
        if not pairs:
            return
        if len(pairs) > 1:
            pairs = self._confirmed(pairs, text, raw_out)
        last = pairs[-1][1]
        end = last if last.get(r.EVENT) == r.REQUEST_FINISHED else None
        if len(pairs) == 1:  # one line: the decisions are that line's own
            if self.match_line is not None and not self.match_line(last):
                return
            failed = self._failed(last) if self.errors_only else True
        else:
            matched = 0
            failed = False
            tests = self.tests
            for _, record in pairs:
                if matched != self.all_matched:
                    for index, test in enumerate(tests):
                        bit = 1 << index
                        if not matched & bit and test(record):
                            matched |= bit
                if self.errors_only and not failed:
                    failed = self._failed(record)
            if matched != self.all_matched:
                return
        if self.errors_only and not (failed or note.startswith("no access line after")):
            return
        pairs = in_time_order(pairs)
        if self.trim is not None:
            pairs = [(line, record) for line, record in pairs if record is end or self.trim(record)]
        if self.json:
            raw_out.extend(line for line, _ in pairs)
        elif self.blocks:
            text.append(self.renderer.block([record for _, record in pairs], end, note, dropped))
        else:
            render = self.renderer.record
            text.extend(render(record) for _, record in pairs)

    def _confirmed(self, pairs: list[tuple[bytes, Record]], text: list[str],
                   raw_out: list[bytes]) -> list[tuple[bytes, Record]]:
        """The lines whose parsed key is the request's (the key most of them share); a line
        grouped by a look at its bytes that the parse does not confirm is shown on its own."""
        first = pairs[0][1].get(r.REQUEST_ID)
        if type(first) is str and first and all(record.get(r.REQUEST_ID) == first for _, record in pairs):
            return pairs
        keys = [key_of_record(record)[0] for _, record in pairs]
        if all(key == keys[0] for key in keys):
            return pairs
        common = max(set(keys), key=keys.count)
        for (line, record), key in zip(pairs, keys):
            if key != common:
                self._single(line, record, text, raw_out)
        return [pair for pair, key in zip(pairs, keys) if key == common]

    def _single(self, line: bytes, record: Record, text: list[str], raw_out: list[bytes]) -> None:
        if self.match_line is not None and not self.match_line(record):
            return
        if self.errors_only:
            rank = r.level_rank(record)
            if not ((rank is not None and rank >= r.WARNING) or r.has_exception(record)):
                return
        if self.json:
            raw_out.append(line)
        else:
            text.append(self.renderer.record(record))


def _same_request(lines: list[bytes]) -> list[Record] | None:
    """The records of a request's lines, in time order, when every line is a JSON object with the
    same ``request.id`` (else None: :meth:`RequestSink._request` sorts it out)."""
    records: list[Record] = []
    keep = records.append
    for line in lines:
        try:
            record = loads(line)
        except JSONDecodeError:
            return None
        if type(record) is not dict:
            return None
        keep(record)
    first = records[0].get(r.REQUEST_ID)
    if type(first) is not str or not first:
        return None
    # group.in_time_order, in the same loop: sorted only when every stamp is text and one is
    # earlier than the one before
    before = ""
    texts = True
    disorder = False
    for record in records:
        if record.get(r.REQUEST_ID) != first:
            return None
        stamp = record.get(r.TIMESTAMP)
        if type(stamp) is str:
            if stamp < before:
                disorder = True
            before = stamp
        else:
            texts = False
    if texts and disorder:
        stamps = [record[r.TIMESTAMP] for record in records]
        return [records[i] for i in sorted(range(len(records)), key=stamps.__getitem__)]
    return records


_NO_NOTE = ("", 0)
_NO_LINES: tuple[list[bytes], int] = ([], 0)
_ALONE: list[Record] = []  # the other lines of a request that has only its access line


class _Batch:
    """What grouping released since the last dispatch, kept compact: the lines in one list,
    per item its kind and its number of lines, and the notes of the few flagged requests."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.kinds = bytearray()
        self.counts = array("I")
        self.notes: dict[int, tuple[str, int]] = {}

    def block(self, lines: list[bytes], note: str, dropped: int) -> None:
        if note or dropped:
            self.notes[len(self.kinds)] = (note, dropped)
        self.lines.extend(lines)
        self.kinds.append(BLOCK)
        self.counts.append(len(lines))

    def one(self, kind: int, line: bytes) -> None:
        self.lines.append(line)
        self.kinds.append(kind)
        self.counts.append(1)

    def settle(self) -> None:
        """Drop an item left half appended: its line, kind and count go in one after the other,
        and Ctrl-C can strike between any two."""
        items = min(len(self.kinds), len(self.counts))
        del self.kinds[items:]
        del self.counts[items:]
        del self.lines[sum(self.counts):]
        for index in [index for index in self.notes if index >= items]:
            del self.notes[index]

    def clear(self) -> None:
        self.kinds = bytearray()  # first: a clearing cut short leaves no item without its lines
        self.counts = array("I")
        self.lines = []
        self.notes = {}
