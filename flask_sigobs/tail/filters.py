"""The filters, each a test on a parsed line, and the byte-level shortcut that skips parsing.

Parsing is most of the cost of a line, and a selective filter (one trace, one user, one event)
rejects nearly every line. So a filter may also name *needles*: byte strings of which at least
one must occur in the raw line for the filter to possibly match. A line that looks like a
complete JSON object and holds none of them is dropped without being parsed. Needles are only
ever a necessary condition (the parsed test still decides), and are only derived from plain
ASCII values, which every JSON encoder writes as themselves.

``--level`` is marked *per line*: with ``--by-request`` the other filters choose which requests
to show (each filter matched by some line of the request), while ``--level`` still hides the
chattier lines inside the blocks.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from . import records
from .records import Record
from .specs import MISSING, TimeBound, Where

Test = Callable[[Record], bool]


@dataclass
class Filter:
    """One condition from the command line."""

    name: str
    test: Test
    needles: tuple[bytes, ...] | None = None  # any one of these must be in the raw line
    maybe: Callable[[bytes], bool] | None = None  # False only for a raw line that cannot match
    per_line: bool = False  # applies to each line even when requests are grouped


def _safe_needle(text: str) -> bytes | None:
    """The value as a JSON encoder writes it, if that is certain (printable ASCII, nothing
    that an encoder escapes)."""
    if text and all(" " <= c <= "~" for c in text) and '"' not in text and "\\" not in text and "/" not in text:
        return text.encode()
    return None


def _literal_runs(glob: str) -> str:
    """The longest run of plain characters in a glob: what any match must contain."""
    runs = re.split(r"[*?\[\]]", glob)
    return max(runs, key=len) if runs else ""


def _glob_regex(patterns: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


# -- the filters -------------------------------------------------------------------------------


def level(minimum: int) -> Filter:
    accepted = {variant.encode() for name, rank in records.LEVEL_RANK.items() if rank >= minimum
                for variant in (name, name.upper(), name.title())}

    def test(record: Record) -> bool:
        rank = records.level_rank(record)
        return rank is not None and rank >= minimum

    key = b'"level":"'
    start = len(key)

    def maybe(line: bytes) -> bool:
        """Reads the level straight from the bytes when the line has exactly one plain
        ``"level":"..."``; anything else (spaces, escapes, nesting) is left to the parser."""
        at = line.find(key)
        if at < 0 or line.find(key, at + start) >= 0:
            return True
        end = line.find(b'"', at + start)
        value = line[at + start:end]
        return value in accepted or b"\\" in value

    return Filter("level", test, maybe=maybe, per_line=True)


def event(patterns: Sequence[str]) -> Filter:
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]
    included = _glob_regex(include).match if include else None
    excluded = _glob_regex(exclude).match if exclude else None

    def test(record: Record) -> bool:
        name = record.get(records.EVENT)
        if type(name) is not str:
            return False
        if included is not None and included(name) is None:
            return False
        return excluded is None or excluded(name) is None

    needles = None
    if include and not exclude:
        found = [_safe_needle(_literal_runs(p)) for p in include]
        if all(found):
            needles = tuple(n for n in found if n)
    return Filter("event", test, needles)


def _prefix_filter(name: str, key: str, prefixes: Sequence[str]) -> Filter:
    wanted = tuple(p.lower() for p in prefixes)

    def test(record: Record) -> bool:
        value = record.get(key)
        return type(value) is str and value.lower().startswith(wanted)

    found = [_safe_needle(p) for p in wanted]
    needles = None
    if all(found):
        needles = tuple({variant for p in wanted for variant in (p.encode(), p.upper().encode())})
    return Filter(name, test, needles)


def trace(prefixes: Sequence[str]) -> Filter:
    """``--trace``: a prefix of the trace id is enough (the short id every line shows)."""
    return _prefix_filter("trace", records.TRACE_ID, prefixes)


def request_id(prefixes: Sequence[str]) -> Filter:
    return _prefix_filter("request-id", records.REQUEST_ID, prefixes)


def user(patterns: Sequence[str]) -> Filter:
    """``--user``: ``enduser.id`` (our auth events and access lines), or an app's own ``user``;
    globs allowed."""
    matches = _glob_regex(patterns).match

    def test(record: Record) -> bool:
        value = record.get(records.USER)
        if value is None:
            value = record.get("user")
        return value is not None and matches(str(value)) is not None

    found = [_safe_needle(_literal_runs(p)) for p in patterns]
    return Filter("user", test, tuple(n for n in found if n) if all(found) else None)


def route(patterns: Sequence[str]) -> Filter:
    """``--route``: a glob on the route template or on the path (``/api/*``)."""
    matches = _glob_regex(patterns).match

    def test(record: Record) -> bool:
        for key in (records.ROUTE, records.PATH):
            value = record.get(key)
            if type(value) is str and matches(value) is not None:
                return True
        return False

    return Filter("route", test)


def status(codes: frozenset[int]) -> Filter:
    def test(record: Record) -> bool:
        return records.status_of(record) in codes

    key = b'"' + records.STATUS.encode() + b'"'
    start = len(key)

    def maybe(line: bytes) -> bool:
        """Reads the status straight from the bytes of a line without a backslash (then every
        ``"`` in it is a string's edge, so the key's bytes are the key, and a key spelled
        with an escape cannot be there): no key at all means no status, and one plain
        ``"http.response.status_code":404`` is the status. Two of them, a string value,
        spaces or anything else are left to the parser."""
        at = line.find(key)
        if b"\\" in line:
            return True
        if at < 0:
            return False
        if line.find(key, at + start) >= 0 or line[at + start:at + start + 1] != b":":
            return True
        digits = line[at + start + 1:at + start + 4]
        if len(digits) == 3 and digits.isdigit() and digits[:1] != b"0" \
                and line[at + start + 4:at + start + 5] in (b",", b"}"):
            return int(digits) in codes
        return True

    return Filter("status", test, maybe=maybe)


def slower(threshold_ms: float) -> Filter:
    def test(record: Record) -> bool:
        value = record.get(records.DURATION)
        return type(value) in (int, float) and value > threshold_ms

    return Filter("slower", test)


_CANONICAL_LEN = len("2026-11-25T20:07:28.597122Z")


def _timestamp_test(bound: TimeBound, after: bool) -> Test:
    canonical = bound.canonical
    when = bound.when
    from datetime import datetime, timezone

    def slow(value: object) -> bool:
        try:
            if isinstance(value, (int, float)):
                moment = datetime.fromtimestamp(value, timezone.utc)
            else:
                text = str(value)
                moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=timezone.utc)
        except (ValueError, OverflowError, OSError):
            return False
        return moment >= when if after else moment <= when

    def test(record: Record) -> bool:
        value = record.get(records.TIMESTAMP)
        if type(value) is str and len(value) == _CANONICAL_LEN and value[-1] == "Z" and value[19] == ".":
            return value >= canonical if after else value <= canonical
        return value is not None and slow(value)

    return test


def since(bound: TimeBound) -> Filter:
    return Filter("since", _timestamp_test(bound, after=True))


def until(bound: TimeBound) -> Filter:
    return Filter("until", _timestamp_test(bound, after=False))


def where(condition: Where) -> Filter:
    key, check = condition.key, condition.test

    def test(record: Record) -> bool:
        return check(records.lookup(record, key, MISSING))

    needles = None
    if condition.op == "=":
        needle = _safe_needle(condition.value)
        if needle:
            needles = (needle,)
    return Filter(f"where {condition.key}", test, needles)


# -- combining ---------------------------------------------------------------------------------


@dataclass
class FilterSet:
    """All the filters of one command line, and the fast paths built from them."""

    filters: list[Filter] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.filters)

    def matcher(self, filters: Iterable[Filter] | None = None) -> Test | None:
        """One function testing every filter (None when there are none)."""
        tests = [f.test for f in (self.filters if filters is None else filters)]
        if not tests:
            return None
        if len(tests) == 1:
            return tests[0]
        if len(tests) == 2:
            first, second = tests
            return lambda record: first(record) and second(record)

        def all_of(record: Record) -> bool:
            for test in tests:
                if not test(record):
                    return False
            return True

        return all_of

    @property
    def per_line(self) -> list[Filter]:
        return [f for f in self.filters if f.per_line]

    @property
    def per_request(self) -> list[Filter]:
        return [f for f in self.filters if not f.per_line]

    def prefilter(self) -> Callable[[bytes], list[bytes]] | None:
        """A function from a block of raw lines to the lines worth parsing: it drops the whole
        JSON objects that hold none of a filter's needles, or that a filter's byte-level test
        rules out (None when no filter offers either). Lines that do not look like one whole
        JSON object are kept, to be shown as raw lines."""
        groups = [_minimal(f.needles) for f in self.filters if f.needles]
        tests = [f.maybe for f in self.filters if f.maybe is not None]
        if not groups and not tests:
            return None
        groups.sort(key=len)
        scan = groups[0] if groups and len(groups[0]) <= 4 else None  # few needles: search the block
        rest = groups[1:] if scan is not None else groups
        searches = [re.compile(b"|".join(re.escape(n) for n in group)).search for group in rest]

        def per_line(lines: list[bytes], shaped: bool) -> list[bytes]:
            for search in searches:
                lines = [line for line in lines
                         if search(line) is not None or not (line[:1] == b"{" and line[-1:] == b"}")]
            for maybe in tests:
                if shaped:
                    lines = [line for line in lines if maybe(line)]
                else:
                    lines = [line for line in lines if maybe(line) or not (line[:1] == b"{" and line[-1:] == b"}")]
            return lines

        def prefilter(block: bytes) -> list[bytes]:
            shaped = _all_objects(block)
            if scan is not None and shaped:
                return per_line(_lines_holding(block, scan), True)
            lines = block.split(b"\n")
            lines.pop()
            if scan is not None:
                lines = [line for line in lines
                         if any(n in line for n in scan) or not (line[:1] == b"{" and line[-1:] == b"}")]
            return per_line(lines, shaped)

        return prefilter


def _minimal(needles: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The needles less those that contain a shorter one: a line holding ``error`` holds
    ``err``, so searching for ``error`` as well finds nothing more."""
    unique = sorted(set(needles), key=len)
    kept: list[bytes] = []
    for needle in unique:
        if not any(shorter in needle for shorter in kept):
            kept.append(needle)
    return tuple(kept)


# A newline not preceded by ``}`` or not followed by ``{``: a line that is not one whole object.
# The pattern starts with a literal, so the regex engine skips from newline to newline in C.
_NOT_AN_OBJECT_LINE = re.compile(rb"\n(?:(?<!\}\n)|(?!\{))")


def _all_objects(block: bytes) -> bool:
    """True when every line of the block starts with ``{`` and ends with ``}`` (one C-level
    pass, no split): then a line without a needle can be skipped without looking at it."""
    return (block[:1] == b"{" and block[-2:] == b"}\n"
            and _NOT_AN_OBJECT_LINE.search(block, 0, len(block) - 1) is None)


def _lines_holding(block: bytes, needles: tuple[bytes, ...]) -> list[bytes]:
    """The lines of the block that contain one of the needles, in order, found by searching
    the whole block (memchr speed) rather than line by line."""
    starts: dict[int, int] = {}
    find, rfind = block.find, block.rfind
    for needle in needles:
        at = find(needle)
        while at >= 0:
            start = rfind(b"\n", 0, at) + 1
            end = find(b"\n", at)
            starts[start] = end
            at = find(needle, end)
    if len(needles) > 1:
        return [block[start:starts[start]] for start in sorted(starts)]
    return [block[start:end] for start, end in starts.items()]


def build(*, level_min: int | None = None, events: Sequence[str] = (), traces: Sequence[str] = (),
          request_ids: Sequence[str] = (), users: Sequence[str] = (), routes: Sequence[str] = (),
          status_codes: frozenset[int] | None = None, slower_ms: float | None = None,
          since_bound: TimeBound | None = None, until_bound: TimeBound | None = None,
          wheres: Sequence[Where] = ()) -> FilterSet:
    """The filters the options ask for, cheapest and most selective first."""
    chosen: list[Filter] = []
    if traces:
        chosen.append(trace(traces))
    if request_ids:
        chosen.append(request_id(request_ids))
    if events:
        chosen.append(event(events))
    if users:
        chosen.append(user(users))
    if routes:
        chosen.append(route(routes))
    if status_codes is not None:
        chosen.append(status(status_codes))
    if slower_ms is not None:
        chosen.append(slower(slower_ms))
    if since_bound is not None:
        chosen.append(since(since_bound))
    if until_bound is not None:
        chosen.append(until(until_bound))
    chosen.extend(where(w) for w in wheres)
    if level_min is not None:
        chosen.append(level(level_min))
    return FilterSet(chosen)
