"""``--stats``: per-route latency and errors, the login audit, the commonest exceptions.

Everything here must stay bounded on an endless stream, so durations go into a logarithmic
histogram (1% wide buckets: percentiles within about half a percent, whatever the count) rather
than a list, and each table keeps at most a fixed number of distinct keys, folding the rest
into "(other)". Logins are counted once per request: one login fires both our
``auth.login_succeeded`` and Flask-Login's ``auth.user_logged_in``, and the same exception is
logged by our ``flask.got_request_exception`` and by Flask's own ``log.exception``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from . import records as r
from .records import Record
from .render import duration_text
from .terminal import Palette, escape

_BUCKETS_PER_E = 100.5  # bucket width e**(1/100.5) - 1, about 1%
MAX_KEYS = 500
OTHER = "(other)"


class Histogram:
    """Counts of durations in log-spaced buckets; percentiles read back from the buckets."""

    __slots__ = ("counts", "n", "low", "high", "zeros")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.zeros = 0
        self.low = math.inf
        self.high = 0.0

    def add(self, ms: float) -> None:
        self.n += 1
        if ms < self.low:
            self.low = ms
        if ms > self.high:
            self.high = ms
        if ms <= 0:
            self.zeros += 1
            return
        bucket = int(math.floor(math.log(ms) * _BUCKETS_PER_E))
        counts = self.counts
        counts[bucket] = counts.get(bucket, 0) + 1

    def percentile(self, q: float) -> float | None:
        if not self.n:
            return None
        rank = max(1, math.ceil(q / 100 * self.n))
        if rank <= self.zeros:
            return 0.0
        seen = self.zeros
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                middle = math.exp((bucket + 0.5) / _BUCKETS_PER_E)
                return min(max(middle, self.low), self.high)
        return self.high


@dataclass
class Route:
    count: int = 0
    server_errors: int = 0
    client_errors: int = 0
    durations: Histogram = field(default_factory=Histogram)


@dataclass
class Person:
    ok: int = 0
    failed: int = 0
    denied: int = 0
    last: str = ""
    addresses: dict[str, int] = field(default_factory=dict)


@dataclass
class Address:
    failed: int = 0
    users: dict[str, int] = field(default_factory=dict)


@dataclass
class Trouble:
    count: int = 0
    message: str = ""
    where: str = ""


def _bounded(table: dict[str, Any], key: str, factory: Any) -> Any:
    item = table.get(key)
    if item is None:
        if len(table) >= MAX_KEYS and key != OTHER:
            return _bounded(table, OTHER, factory)
        item = table[key] = factory()
    return item


def _text(value: Any) -> str:
    return escape(value if type(value) is str else str(value))[:200]


class Stats:
    """The running totals. ``add`` is on the hot path; ``render`` runs every few seconds."""

    def __init__(self) -> None:
        self.lines = 0
        self.raw = 0
        self.requests = 0
        self.levels: dict[str, int] = {}
        self.first = ""
        self.last = ""
        self.routes: dict[str, Route] = {}
        self.people: dict[str, Person] = {}
        self.addresses: dict[str, Address] = {}
        self.exceptions: dict[str, Trouble] = {}
        self._seen: OrderedDict[tuple[Any, ...], None] = OrderedDict()

    def _once(self, *key: Any) -> bool:
        """True the first time a (request, what) pair is seen (a bounded memory of recent ones)."""
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > 20_000:
            self._seen.popitem(last=False)
        return True

    def add_raw(self) -> None:
        self.lines += 1
        self.raw += 1

    def add(self, record: Record) -> None:
        self.lines += 1
        stamp = record.get(r.TIMESTAMP)
        if type(stamp) is str:
            if not self.first or stamp < self.first:
                self.first = stamp
            if stamp > self.last:
                self.last = stamp
        level = record.get(r.LEVEL)
        if type(level) is str:
            self.levels[level] = self.levels.get(level, 0) + 1
        event = record.get(r.EVENT)
        if event == r.REQUEST_FINISHED:
            self._request(record)
        elif type(event) is str and event.startswith("auth."):
            self._auth(event, record)
        if r.EXC_TYPE in record or "exception" in record:
            self._exception(record)

    def _request(self, record: Record) -> None:
        self.requests += 1
        method = record.get(r.METHOD, "-")
        route = record.get(r.ROUTE)
        key = f"{method} {route}" if route is not None else f"{method} (no route)"
        stats = _bounded(self.routes, key, Route)
        stats.count += 1
        status = record.get(r.STATUS)
        if type(status) is int:
            if status >= 500:
                stats.server_errors += 1
            elif status >= 400:
                stats.client_errors += 1
        duration = record.get(r.DURATION)
        if type(duration) in (int, float):
            stats.durations.add(duration)

    def _auth(self, event: str, record: Record) -> None:
        user = record.get(r.USER)
        who = _text(user) if user is not None else "(unknown)"
        client = record.get(r.CLIENT)
        where = _text(client) if client is not None else "(unknown)"
        request = r.request_key(record)
        if event in r.LOGIN_OK:
            if request is not None and not self._once(request, "login", who):
                return
            person = _bounded(self.people, who, Person)
            person.ok += 1
        elif event == r.LOGIN_FAILED:
            if request is not None and not self._once(request, "failed", who):
                return
            person = _bounded(self.people, who, Person)
            person.failed += 1
            address = _bounded(self.addresses, where, Address)
            address.failed += 1
            if len(address.users) < 50 or who in address.users:
                address.users[who] = address.users.get(who, 0) + 1
        elif event == r.ACCESS_DENIED:
            person = _bounded(self.people, who, Person)
            person.denied += 1
        else:
            return
        stamp = record.get(r.TIMESTAMP)
        if type(stamp) is str and stamp > person.last:
            person.last = stamp
        if len(person.addresses) < 50 or where in person.addresses:
            person.addresses[where] = person.addresses.get(where, 0) + 1

    def _exception(self, record: Record) -> None:
        found: list[tuple[str, str]] = []
        if r.EXC_TYPE in record:
            found.append((_text(record[r.EXC_TYPE]), _text(record.get(r.EXC_MESSAGE, ""))))
        value = record.get("exception")
        if isinstance(value, list):
            for item in value[:1]:  # the exception raised; its causes are its story
                if isinstance(item, dict):
                    found.append((_text(item.get("exc_type", "Exception")), _text(item.get("exc_value", ""))))
        elif isinstance(value, str) and value.strip():
            last = value.strip().splitlines()[-1]
            kind, _, message = last.partition(": ")
            found.append((_text(kind), _text(message)))
        request = r.request_key(record)
        for kind, message in found:
            if request is not None and not self._once(request, "exception", kind):
                continue
            trouble = _bounded(self.exceptions, kind, Trouble)
            trouble.count += 1
            trouble.message = message
            route = record.get(r.ROUTE, record.get(r.PATH))
            if route is not None:
                trouble.where = f"{_text(record.get(r.METHOD, ''))} {_text(route)}".strip()

    # -- the report --------------------------------------------------------------------------

    def render(self, p: Palette, clock: Any, *, top: int = 20) -> str:
        out: list[str] = []
        span = ""
        if self.first:
            first = " ".join(clock.split(self.first))
            last = " ".join(clock.split(self.last))
            span = f", {first} → {last}"
        raw = f", {self.raw} not JSON" if self.raw else ""
        levels = " ".join(f"{_text(k)}={v}" for k, v in sorted(self.levels.items(), key=lambda kv: -kv[1]))
        out.append(f"{p.bold}{self.lines} lines{p.reset}{raw}, {self.requests} requests{span}")
        if levels:
            out.append(f"{p.dim}levels: {levels}{p.reset}")

        out.append("")
        out.append(f"{p.bold}{'ROUTE':<40} {'REQS':>7} {'5XX':>6} {'4XX':>6} {'P50':>8} {'P95':>8} {'P99':>8} {'MAX':>8}{p.reset}")
        routes = sorted(self.routes.items(), key=lambda kv: -kv[1].count)
        for key, route in routes[:top]:
            h = route.durations
            rate5 = route.server_errors / route.count * 100
            rate4 = route.client_errors / route.count * 100
            colour5 = p.bold_red if route.server_errors else ""
            colour4 = p.yellow if route.client_errors else ""
            cells = [duration_text(h.percentile(q)) if h.n else "-" for q in (50, 95, 99)]
            cells.append(duration_text(h.high) if h.n else "-")
            out.append(f"{_text(key)[:40]:<40} {route.count:>7} {colour5}{rate5:>5.1f}%{p.reset} "
                       f"{colour4}{rate4:>5.1f}%{p.reset} " + " ".join(f"{c:>8}" for c in cells))
        if len(routes) > top:
            out.append(f"{p.dim}… {len(routes) - top} more routes{p.reset}")
        if not routes:
            out.append(f"{p.dim}(no access lines){p.reset}")

        out.append("")
        out.append(f"{p.bold}{'LOGINS BY USER':<24} {'OK':>6} {'FAILED':>7} {'DENIED':>7}  {'LAST':<19}  FROM{p.reset}")
        people = sorted(self.people.items(), key=lambda kv: (-kv[1].failed, -kv[1].ok, kv[0]))
        for who, person in people[:top]:
            last = " ".join(clock.split(person.last)) if person.last else "-"
            froms = ", ".join(a for a, _ in sorted(person.addresses.items(), key=lambda kv: -kv[1])[:3])
            if len(person.addresses) > 3:
                froms += f" +{len(person.addresses) - 3}"
            failed = f"{p.bold_red if person.failed else ''}{person.failed:>7}{p.reset}"
            denied = f"{p.yellow if person.denied else ''}{person.denied:>7}{p.reset}"
            out.append(f"{who[:24]:<24} {person.ok:>6} {failed} {denied}  {last[:19]:<19}  {froms}")
        if not people:
            out.append(f"{p.dim}(no auth events){p.reset}")

        if self.addresses:
            out.append("")
            out.append(f"{p.bold}{'FAILED LOGINS BY ADDRESS':<24} {'FAILED':>7}  USERS TRIED{p.reset}")
            for where, address in sorted(self.addresses.items(), key=lambda kv: -kv[1].failed)[:top]:
                users = ", ".join(u for u, _ in sorted(address.users.items(), key=lambda kv: -kv[1])[:5])
                if len(address.users) > 5:
                    users += f" +{len(address.users) - 5}"
                out.append(f"{where[:24]:<24} {p.bold_red}{address.failed:>7}{p.reset}  {users}")

        out.append("")
        out.append(f"{p.bold}{'EXCEPTIONS':<32} {'COUNT':>6}  LAST{p.reset}")
        troubles = sorted(self.exceptions.items(), key=lambda kv: -kv[1].count)
        for kind, trouble in troubles[:top]:
            where = f" ({trouble.where})" if trouble.where else ""
            out.append(f"{p.bold_red}{kind[:32]:<32}{p.reset} {trouble.count:>6}  {trouble.message[:80]}{p.dim}{where}{p.reset}")
        if not troubles:
            out.append(f"{p.dim}(none){p.reset}")
        return "\n".join(out)
