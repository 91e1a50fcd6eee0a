"""Brute force and credential stuffing: failed logins counted per user, per client address, and per
user and address, from the shared database (so every gunicorn worker's failures count), once per
flush of the writer thread.

Crossing ``SIGOBS_AUDIT_MAX_FAILURES`` (default ``10/5m``: 10 failures in 5 minutes) locks the key
for the window: one worker wins the ``sigobs_audit_lock`` row (``INSERT ... ON CONFLICT DO UPDATE
... WHERE until < now``), and only that one raises ``auth.login_fail_max``. Every worker reads the
active locks after each flush, so :meth:`Detector.check` is a dictionary look-up on the request
path, never a query. Lockout is the app's choice (it calls ``check``); detection is always on.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .rows import iso_time, parse_iso
from .store import Store

_THRESHOLD = re.compile(r"\s*(\d+)\s*(?:/\s*(\d+)\s*([smhd]?))?\s*\Z")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
COUNTED = ("auth.login_failed",)


def parse_threshold(value: Any) -> tuple[int, float]:
    """``10`` or ``10/5m`` -> (failures, window in seconds); 0 failures: detection off."""
    match = _THRESHOLD.match(str(value))
    if not match:
        raise ValueError(f"expected FAILURES or FAILURES/WINDOW (10/5m), not {value!r}")
    count = int(match[1])
    window = int(match[2]) * _UNITS[match[3] or ""] if match[2] else 300
    if window <= 0:
        raise ValueError(f"the window must be positive, not {value!r}")
    return count, float(window)


@dataclass(frozen=True)
class Lockout:
    """The answer of :meth:`Detector.check`: false when nothing is locked."""

    locked: bool
    retry_after: int = 0  # whole seconds, for a Retry-After header
    key: str | None = None  # what is locked: "user:alice", "address:192.0.2.1", "user+address:..."

    def __bool__(self) -> bool:
        return self.locked


OPEN = Lockout(False)


def keys(user: str | None, address: str | None) -> list[str]:
    found = []
    if user:
        found.append("user:" + user)
    if address:
        found.append("address:" + address)
    if user and address:
        found.append(f"user+address:{user}|{address}")
    return found


class Detector:
    def __init__(self, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window
        self._locks: dict[str, float] = {}  # key -> until (epoch seconds), replaced whole after each refresh

    def locked_any(self) -> bool:
        return bool(self._locks)

    def check(self, user: str | None, address: str | None) -> Lockout:
        locks = self._locks
        if not locks:
            return OPEN
        now = time.time()
        worst: Lockout = OPEN
        for key in keys(user, address):
            until = locks.get(key)
            if until is not None and until > now:
                retry = max(int(until - now + 0.999), 1)
                if retry > worst.retry_after:
                    worst = Lockout(True, retry, key)
        return worst

    def observe(self, store: Store, rows: Iterable[dict[str, Any]],
                alarm: Callable[[list[str], int, dict[str, Any]], None]) -> None:
        """After a batch is in the database: count the failures of the keys it touched."""
        if self.max_failures <= 0:
            return
        touched: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["event"] in COUNTED:
                for key in keys(row.get("enduser_id"), row.get("client_address")):
                    touched[key] = row  # the latest row of the key: its trace gets the alarm
        if not touched:
            return
        now_us = int(time.time() * 1_000_000)
        since = iso_time(now_us - int(self.window * 1_000_000))
        until = iso_time(now_us + int(self.window * 1_000_000))
        now = iso_time(now_us)
        won: dict[int, tuple[dict[str, Any], list[str], int]] = {}  # one alarm per row, whatever it locked
        for key, row in touched.items():
            kind = key.split(":", 1)[0]
            if kind == "user":
                where, params = "enduser_id = :u", {"u": row["enduser_id"]}
            elif kind == "address":
                where, params = "client_key = :k", {"k": row["client_key"]}
            else:
                where, params = "enduser_id = :u AND client_key = :k", {"u": row["enduser_id"], "k": row["client_key"]}
            (count,), = store.query(f"SELECT COUNT(*) FROM sigobs_audit WHERE {where} AND time >= :since "
                                    "AND event = 'auth.login_failed'", {**params, "since": since})
            if count < self.max_failures:
                continue
            with store.transaction():
                changed = store.execute(
                    "INSERT INTO sigobs_audit_lock (key, until, failures) VALUES (:key, :until, :n) "
                    "ON CONFLICT (key) DO UPDATE SET until = excluded.until, failures = excluded.failures "
                    "WHERE sigobs_audit_lock.until < :now", {"key": key, "until": until, "n": count, "now": now})
            if changed:
                _, kinds, most = won.get(id(row), (row, [], 0))
                won[id(row)] = (row, [*kinds, key.split(":", 1)[0]], max(most, count))
        for row, kinds, most in won.values():
            alarm(kinds, most, row)

    def refresh(self, store: Store) -> None:
        now = iso_time(int(time.time() * 1_000_000))
        found = store.query("SELECT key, until FROM sigobs_audit_lock WHERE until > :now", {"now": now})
        self._locks = {key: parse_iso(until) / 1_000_000 for key, until in found}
