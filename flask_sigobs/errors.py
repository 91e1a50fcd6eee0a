"""Failures of flask-sigobs itself, reported once on its own logger and never raised.

A receiver that fails on every request must not write a line per request: each distinct problem
is reported the first time it is seen, with a count kept for ``sigobs doctor`` and tests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any, Hashable

logger = logging.getLogger("flask_sigobs")
failures: Counter[Hashable] = Counter()
_lock = threading.Lock()
_MAX_KINDS = 256


def report_once(key: Hashable, message: str, *args: Any, exc_info: Any = None) -> None:
    with _lock:
        first = key not in failures
        if first and len(failures) >= _MAX_KINDS:
            key, first = "other", "other" not in failures
        failures[key] += 1
    if first:
        try:
            logger.warning(message + " (reported once)", *args, exc_info=exc_info)
        except Exception:  # the logger's own destination may be what is broken
            pass


class Tally:
    """Counts one recurring problem and says so at most once per ``interval`` seconds.

    The first occurrence is reported at once; later ones are added up and reported with their
    count by the first occurrence after the interval, or by :meth:`flush` (at shutdown), so a
    problem that happens ten thousand times a second writes one line a minute, and no count is
    lost. ``message`` is formatted with the count and the seconds the count covers.
    """

    def __init__(self, key: Hashable, message: str, interval: float = 60.0) -> None:
        self.key = key
        self.message = message
        self.interval = interval
        self.total = 0
        self.reports = 0
        self.pending = 0  # counted, not yet reported: tick() has nothing to do while it is 0
        self._since = time.monotonic()
        self._last: float | None = None
        self._lock = threading.Lock()

    def add(self, count: int = 1) -> None:
        now = time.monotonic()
        with self._lock:
            self.total += count
            self.pending += count
            due = self._last is None or now - self._last >= self.interval
            report = self._take(now) if due else None
        if report:
            self._say(*report)

    def tick(self) -> None:
        """Report the counts waiting for their interval, if it has passed (cheap when not)."""
        if self.pending and self._last is not None and time.monotonic() - self._last >= self.interval:
            self.flush()

    def flush(self) -> None:
        """Report what was counted since the last report, if anything."""
        with self._lock:
            report = self._take(time.monotonic())
        if report:
            self._say(*report)

    def _take(self, now: float) -> tuple[int, float] | None:
        count, self.pending = self.pending, 0
        if not count:
            return None
        since, self._since, self._last = self._since, now, now
        self.reports += 1
        return count, max(now - since, 0.0)

    def _say(self, count: int, seconds: float) -> None:
        with _lock:
            failures[self.key] += count
        try:
            logger.warning(self.message, count, seconds)
        except Exception:  # the logger's own destination may be what is broken
            pass

    def reset(self) -> None:
        """Start afresh (in a forked child: the parent's counts are the parent's)."""
        self._lock = threading.Lock()
        self.total = self.reports = self.pending = 0
        self._since, self._last = time.monotonic(), None
