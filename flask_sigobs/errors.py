"""Failures of flask-sigobs itself, reported once on its own logger and never raised.

A receiver that fails on every request must not write a line per request: each distinct problem
is reported the first time it is seen, with a count kept for ``sigobs doctor`` and tests.
"""

from __future__ import annotations

import logging
import threading
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
