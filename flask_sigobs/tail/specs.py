"""Parsers for what people type after the options: durations, status classes, times, --where.

They run once, at start-up, so each turns a friendly spelling into the cheapest form to test per
line (a number of milliseconds, a set of status codes, a canonical timestamp string that
compares lexicographically against ours). Each raises ``argparse.ArgumentTypeError`` with a
message that says what would have been accepted, so a typo gets a usage line, not a traceback.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|µs|ms|s|m|h|d)?\s*$", re.IGNORECASE)
_UNIT_MS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0,
            "d": 86_400_000.0}


def duration_ms(text: str, default_unit: str = "ms") -> float:
    """``500ms``, ``1.5s``, ``2m`` or a bare number (in ``default_unit``) as milliseconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 500ms, 1.5s, 2m)")
    unit = (match.group(2) or default_unit).lower()
    return float(match.group(1)) * _UNIT_MS[unit]


def duration_s(text: str) -> float:
    """A duration whose bare numbers are seconds (timeouts, refresh intervals), in seconds."""
    return duration_ms(text, default_unit="s") / 1000.0


def slower(text: str) -> float:
    """``--slower``: a bare number is milliseconds, as ``duration_ms`` is in the log line."""
    return duration_ms(text, default_unit="ms")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


# -- status codes ------------------------------------------------------------------------------

_STATUS_TERM = re.compile(r"^(?:([1-5])xx|(\d{3})-(\d{3})|(>=|<=|>|<|!=|!)?(\d{3}))$", re.IGNORECASE)


def status(text: str) -> frozenset[int]:
    """``5xx``, ``4xx,5xx``, ``404``, ``500-504``, ``>=400``, ``<300``, ``!200``: a set of codes.

    A set, because the test per line is then one ``in``, whatever the spelling.
    """
    codes: set[int] = set()
    excluded: set[int] = set()
    for term in (t.strip() for t in text.split(",")):
        match = _STATUS_TERM.match(term)
        if not match:
            raise argparse.ArgumentTypeError(
                f"not a status spec: {term!r} (examples: 5xx, 404, 500-504, '>=400', '!200')")
        klass, low, high, op, code = match.groups()
        if klass:
            codes.update(range(int(klass) * 100, int(klass) * 100 + 100))
        elif low:
            codes.update(range(int(low), int(high) + 1))
        else:
            n = int(code)
            if op in ("!", "!="):
                excluded.add(n)
            elif op == ">=":
                codes.update(range(n, 1000))
            elif op == ">":
                codes.update(range(n + 1, 1000))
            elif op == "<=":
                codes.update(range(100, n + 1))
            elif op == "<":
                codes.update(range(100, n))
            else:
                codes.add(n)
    if excluded and not codes:
        codes = set(range(100, 1000))
    return frozenset(codes - excluded)


# -- times -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeBound:
    """A point in time, kept both as an aware datetime and as our canonical log string.

    Our lines carry ``2026-11-25T20:07:28.597122Z``; such strings of one length compare in time
    order, so the per-line test is a string comparison, with no date parsing.
    """

    when: datetime

    @property
    def canonical(self) -> str:
        return self.when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def time_bound(text: str, *, utc: bool = False, now: datetime | None = None) -> TimeBound:
    """``10m`` / ``2h`` / ``1d`` ago, or an ISO date/time (naive ones in local time, or UTC with
    ``--utc``), or ``HH:MM[:SS]`` today."""
    now = now or datetime.now(timezone.utc)
    if _DURATION.match(text) and not re.fullmatch(r"\s*\d+\s*", text):
        return TimeBound(now - timedelta(milliseconds=duration_ms(text, default_unit="s")))
    value = text.strip()
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", value):
            zone = timezone.utc if utc else None
            today = now.astimezone(zone).date().isoformat()
            value = f"{today}T{value}"
        if value.endswith(("Z", "z")):
            value = value[:-1] + "+00:00"
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (examples: 10m, 2h, 2026-11-25T20:00, 20:00)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc) if utc else parsed.astimezone()
    return TimeBound(parsed)


# -- --where -----------------------------------------------------------------------------------

_WHERE = re.compile(r"^(?P<key>[^=!~<>]+?)\s*(?P<op>!=|!~|>=|<=|=|~|>|<)\s*(?P<value>.*)$", re.DOTALL)


@dataclass(frozen=True)
class Where:
    """One ``--where`` condition: a key (flat, like ``http.route``, or a path into nested JSON),
    an operator and a value, with the operator already turned into a test."""

    key: str
    op: str
    value: str
    test: Callable[[object], bool]


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return str(value)


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def where(text: str) -> Where:
    """``key=value``, ``key!=value``, ``key~regex``, ``key!~regex``, ``key>number`` (and ``>=``,
    ``<``, ``<=``), or a bare ``key`` for "the key is present"."""
    match = _WHERE.match(text)
    if not match:
        key = text.strip()
        if not key or any(c in key for c in "=!~<>"):
            raise argparse.ArgumentTypeError(
                f"not a condition: {text!r} (examples: enduser.id=alice, http.route~^/api, "
                "duration_ms>250, url.query!=)")
        return Where(key, "exists", "", lambda v: v is not _MISSING)
    key, op, value = match.group("key").strip(), match.group("op"), match.group("value")
    test: Callable[[object], bool]
    if op == "=":
        test = lambda v: v is not _MISSING and _as_text(v) == value  # noqa: E731
    elif op == "!=":
        test = lambda v: v is _MISSING or _as_text(v) != value  # noqa: E731
    elif op in ("~", "!~"):
        try:
            pattern = re.compile(value)
        except re.error as error:
            raise argparse.ArgumentTypeError(f"bad regular expression in {text!r}: {error}") from None
        if op == "~":
            test = lambda v: v is not _MISSING and pattern.search(_as_text(v)) is not None  # noqa: E731
        else:
            test = lambda v: v is _MISSING or pattern.search(_as_text(v)) is None  # noqa: E731
    else:
        try:
            bound = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{op} needs a number: {text!r}") from None
        compare = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}[op]

        def test(v: object, compare: Callable[[float, float], bool] = compare) -> bool:
            number = _as_number(v)
            return number is not None and compare(number, bound)
    return Where(key, op, value, test)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: object = _Missing()
MISSING = _MISSING


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]
