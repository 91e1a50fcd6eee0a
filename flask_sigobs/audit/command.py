"""``sigobs audit list | stats | verify | purge | export``: the trail read by people and by SIEMs
(the arguments are in ``options``).

Each takes ``--db URL`` (an SQLAlchemy URL, or the path of an SQLite file) or reads
``SIGOBS_AUDIT_URL``. ``list --json`` and ``export`` print the log lines' own field names.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import time
from typing import Any, Iterator, TextIO

import orjson

from .rows import iso_time, parse_iso
from .store import COLUMNS, FIELD_NAMES, Store, StoreError, address_of, connect, network_range, safe_url

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SELECT = "SELECT id, " + ", ".join(COLUMNS) + " FROM sigobs_audit"
CHART_BARS = 24


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    name = getattr(args, "audit_command", None)
    if name is None:
        parser.print_help(sys.stderr)
        return 2
    url = _url(args.db or os.environ.get("SIGOBS_AUDIT_URL"))
    if url is None:
        print("sigobs audit: no database: give --db URL or set SIGOBS_AUDIT_URL "
              "(the app's default is sqlite:///<instance folder>/sigobs-audit.db)", file=sys.stderr)
        return 2
    try:
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else None
        if path is not None and not os.path.exists(path):
            raise StoreError(f"{path}: no such file")
        store = connect(url, create=name == "purge")
        if store.schema_version() is None:
            raise StoreError(f"{safe_url(url)} holds no audit trail (no sigobs_audit_meta table)")
    except StoreError as exc:
        print(f"sigobs audit: {exc}", file=sys.stderr)
        return 2
    try:
        return _COMMANDS[name](store, args)
    except ValueError as exc:
        print(f"sigobs audit {name}: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()


def _url(value: str | None) -> str | None:
    if not value:
        return None
    if "://" in value:
        return value
    return "sqlite:///" + os.path.abspath(value)  # a plain path: an SQLite file


# -- filters ---------------------------------------------------------------------------------------

def when(text: str, now: float | None = None) -> str:
    """``1h``, ``7d`` (ago) or an ISO-8601 time -> the trail's own time text."""
    match = _DURATION.match(text)
    if match:
        now = time.time() if now is None else now
        return iso_time(int((now - float(match[1]) * _UNITS[match[2]]) * 1_000_000))
    try:
        return iso_time(parse_iso(text.strip()))
    except ValueError:
        raise ValueError(f"{text!r} is neither an age (30m, 1h, 7d, 2w) nor an ISO-8601 time") from None


def where(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if getattr(args, "user", None):
        protected = _protected(args.user)
        if protected:  # a name that matched no account is kept hashed: look for that too
            clauses.append("enduser_id IN (:user, :user_hash)")
            params["user_hash"] = protected
        else:
            clauses.append("enduser_id = :user")
        params["user"] = args.user
    if getattr(args, "ip", None):
        try:
            params["ip_low"], params["ip_high"] = network_range(args.ip)
        except ValueError:
            raise ValueError(f"--ip {args.ip!r} is neither an address nor a network (CIDR)") from None
        clauses.append("client_key BETWEEN :ip_low AND :ip_high")
    if getattr(args, "event", None):
        event = args.event if "." in args.event else "auth." + args.event
        clauses.append("event = :event")
        params["event"] = event
    if getattr(args, "outcome", None):
        clauses.append("outcome = :outcome")
        params["outcome"] = args.outcome
    if getattr(args, "since", None):
        clauses.append("time >= :since")
        params["since"] = when(args.since)
    if getattr(args, "until", None):
        clauses.append("time < :until")
        params["until"] = when(args.until)
    if getattr(args, "trace", None):
        clauses.append("trace_id = :trace")
        params["trace"] = args.trace.strip().lower()
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _protected(name: str) -> str | None:
    """The hash a name that matches no account is kept as, when ``SIGOBS_AUDIT_KEY`` (the key it was
    hashed with, when the app has it) is in the environment."""
    key = os.environ.get("SIGOBS_AUDIT_KEY")
    if not key or name.startswith("hash:"):
        return None
    from .rows import Protector

    return Protector(key.encode(), "hash").user(name)


def as_record(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row as the log line names its fields (``data`` as the object it was), without empty ones."""
    record: dict[str, Any] = {}
    for column, value in zip(COLUMNS, row[1:]):
        if value is None:
            continue
        if column == "data":
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                pass
        record[FIELD_NAMES[column]] = value
    return record


# -- list ------------------------------------------------------------------------------------------

def _list(store: Store, args: argparse.Namespace) -> int:
    clause, params = where(args)
    sql = _SELECT + clause + " ORDER BY time DESC, id DESC"
    if args.limit > 0:
        sql += f" LIMIT {int(args.limit)}"
    rows = store.query(sql, params)
    rows.reverse()
    out = sys.stdout
    if args.json:
        for row in rows:
            out.write(orjson.dumps(as_record(row)).decode() + "\n")
        return 0
    table(out, ["time", "event", "outcome", "reason", "enduser.id", "client.address", "http.route", "trace_id"],
          [[r[1][:23] + "Z", r[2].removeprefix("auth."), r[3], r[4] or "", r[6] or "", r[7] or "", r[9] or "",
            r[11] or ""] for r in rows])
    if not rows:
        print("(no rows)", file=sys.stderr)
    return 0


def cell(value: Any, width: int = 40) -> str:
    """A value fit for a terminal: control characters visible, never wider than ``width``."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))
    return text if len(text) <= width else text[: width - 1] + "…"


def table(out: TextIO, header: list[str], rows: list[list[Any]]) -> None:
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    out.write("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")


# -- stats -----------------------------------------------------------------------------------------

_FAIL = "SUM(CASE WHEN outcome = 'failure' THEN 1 ELSE 0 END)"
_OK = "SUM(CASE WHEN outcome = 'success' THEN 1 ELSE 0 END)"


def _and(clause: str, condition: str) -> str:
    return (clause + " AND " if clause else " WHERE ") + condition


def stats(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    """Each figure from queries that the indexes cover (see ``store``); on SQLite the four scans run
    at once, each on a connection of its own (sqlite3 lets go of the GIL while it reads)."""
    clause, params = where(args)
    top = max(int(args.top), 1)
    logins = _and(clause, "event IN ('auth.login_failed', 'auth.login_succeeded')")
    failed = _and(clause, "outcome = :failure")
    failed_params = {**params, "failure": "failure"}
    by_user = _hint(store, "sigobs_audit_user", not (args.ip or args.trace))
    by_address = _hint(store, "sigobs_audit_address", not (args.user or args.trace))

    def totals(db: Store) -> dict[str, Any]:
        # Separate queries on purpose: alone, MIN and MAX of an indexed column are one index seek
        # each, and COUNT(*) of one outcome is a range of the outcome index.
        (total,), = db.query(f"SELECT COUNT(*) FROM sigobs_audit{clause}", params)
        (failures,), = db.query(f"SELECT COUNT(*) FROM sigobs_audit{failed}", failed_params)
        (first,), = db.query(f"SELECT MIN(time) FROM sigobs_audit{clause}", params)
        (last,), = db.query(f"SELECT MAX(time) FROM sigobs_audit{clause}", params)
        timeline: list[tuple[str, int]] = []
        if first and last:
            start, end = parse_iso(first), parse_iso(last)
            step = _bucket(end - start)
            width = {60_000_000: 16, 3_600_000_000: 13, 86_400_000_000: 10}[step]
            since = iso_time(max(start, end - end % step - (CHART_BARS - 1) * step))[:width]  # the chart's bars only
            timeline = db.query(f"SELECT SUBSTR(time, 1, {width}) AS bucket, COUNT(*) FROM sigobs_audit{failed} "
                                "AND time >= :chart GROUP BY bucket ORDER BY bucket", {**failed_params, "chart": since})
        return {"rows": total, "failures": failures, "first": first, "last": last,
                "failures_over_time": [{"time": b, "failures": n} for b, n in timeline]}

    def per_user(db: Store) -> dict[str, Any]:
        users = db.query(f"SELECT enduser_id, COUNT(*), {_FAIL}, {_OK}, MAX(time) FROM sigobs_audit{by_user}{logins} "
                         f"AND enduser_id IS NOT NULL GROUP BY enduser_id ORDER BY 3 DESC, 2 DESC LIMIT {top}", params)
        after = {}
        if users:  # a success right after a failure: of the top users only
            names = {f"u{i}": row[0] for i, row in enumerate(users)}
            inside = ", ".join(f":{k}" for k in names)
            after = dict(db.query(
                "SELECT enduser_id, COUNT(*) FROM (SELECT enduser_id, event, LAG(event) OVER "
                "(PARTITION BY enduser_id ORDER BY time, id) AS previous FROM sigobs_audit"
                f"{_and(logins, f'enduser_id IN ({inside})')}) AS ordered "
                "WHERE event = 'auth.login_succeeded' AND previous = 'auth.login_failed' GROUP BY enduser_id",
                {**params, **names}))
        return {"users": [{"enduser.id": u, "attempts": a, "failures": f or 0, "successes": s or 0,
                           "successes_after_failures": after.get(u, 0), "last": t} for u, a, f, s, t in users]}

    def per_address(db: Store) -> dict[str, Any]:
        addresses = db.query(
            f"SELECT client_key, COUNT(*), {_FAIL} FROM sigobs_audit{by_address}{logins} "
            f"AND client_key IS NOT NULL GROUP BY client_key ORDER BY 3 DESC, 2 DESC LIMIT {top}", params)
        distinct = {}
        if addresses:  # of the top addresses only: COUNT(DISTINCT) over all of them doubles the time
            keys = {f"k{i}": row[0] for i, row in enumerate(addresses)}
            inside = ", ".join(f":{k}" for k in keys)
            distinct = dict(db.query(f"SELECT client_key, COUNT(DISTINCT enduser_id) FROM sigobs_audit{by_address}"
                                     f"{_and(logins, f'client_key IN ({inside})')} GROUP BY client_key",
                                     {**params, **keys}))
        return {"addresses": [{"client.address": address_of(k), "attempts": a, "failures": f or 0,
                               "distinct_users": distinct.get(k, 0)} for k, a, f in addresses]}

    def per_reason(db: Store) -> dict[str, Any]:
        reasons = db.query(f"SELECT reason, COUNT(*) FROM sigobs_audit{failed} AND reason IS NOT NULL "
                           f"GROUP BY reason ORDER BY 2 DESC LIMIT {top}", failed_params)
        return {"reasons": [{"reason": r, "count": n} for r, n in reasons]}

    found: dict[str, Any] = {}
    for part in _at_once(store, [totals, per_user, per_address, per_reason]):
        found.update(part)
    return {key: found[key] for key in ("rows", "failures", "first", "last", "users", "addresses", "reasons",
                                        "failures_over_time")}


def _at_once(store: Store, tasks: list[Any]) -> list[dict[str, Any]]:
    if store.dialect != "sqlite" or store.url.endswith(":memory:"):
        return [task(store) for task in tasks]
    from concurrent.futures import ThreadPoolExecutor

    def run(task: Any) -> dict[str, Any]:
        own = connect(store.url, create=False)
        try:
            return task(own)
        finally:
            own.close()

    with ThreadPoolExecutor(len(tasks)) as pool:
        return list(pool.map(run, tasks))


def _hint(store: Store, index: str, covered: bool) -> str:
    """SQLite's planner takes the outcome or time index for a filter on them and then reads the
    table for every row (seconds on a million); the covering index is read alone (a fraction)."""
    return f" INDEXED BY {index}" if covered and store.dialect == "sqlite" else ""


def _bucket(span_us: int) -> int:
    if span_us <= 3 * 3_600_000_000:
        return 60_000_000  # a minute
    if span_us <= 4 * 86_400_000_000:
        return 3_600_000_000  # an hour
    return 86_400_000_000  # a day


def _stats(store: Store, args: argparse.Namespace) -> int:
    found = stats(store, args)
    out = sys.stdout
    if args.json:
        out.write(orjson.dumps(found).decode() + "\n")
        return 0
    out.write(f"{found['rows']} rows, {found['failures']} failures, from {found['first'] or '-'} "
              f"to {found['last'] or '-'}\n\nper user (by failed logins)\n")
    table(out, ["enduser.id", "attempts", "failures", "successes", "after failures", "last"],
          [[u["enduser.id"], u["attempts"], u["failures"], u["successes"], u["successes_after_failures"], u["last"]]
           for u in found["users"]])
    out.write("\nper address (by failed logins)\n")
    table(out, ["client.address", "attempts", "failures", "distinct users"],
          [[a["client.address"], a["attempts"], a["failures"], a["distinct_users"]] for a in found["addresses"]])
    out.write("\ntop reasons\n")
    table(out, ["reason", "count"], [[r["reason"], r["count"]] for r in found["reasons"]])
    out.write("\nfailures over time\n")
    for line in chart(found["failures_over_time"]):
        out.write(line + "\n")
    return 0


def chart(points: list[dict[str, Any]], width: int = 50, height: int = CHART_BARS) -> Iterator[str]:
    """A bar per time bucket (the last ``height`` buckets), scaled to the largest."""
    points = points[-height:]
    if not points:
        yield "(no failures)"
        return
    most = max(p["failures"] for p in points) or 1
    label = max(len(p["time"]) for p in points)
    for p in points:
        eighths = round(p["failures"] / most * width * 8)
        bar = "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]
        yield f"{p['time'].ljust(label)} {bar} {p['failures']}"


# -- verify, purge, export -------------------------------------------------------------------------

def _chainer() -> Any:
    from .chain import Chainer

    key = os.environ.get("SIGOBS_AUDIT_KEY")
    return Chainer(key.encode() if key else None)


def _verify(store: Store, args: argparse.Namespace) -> int:
    from .chain import verify

    report = verify(store, _chainer())
    if report.broken is not None:
        print(f"sigobs audit verify: BROKEN at {report.broken}", file=sys.stdout)
        return 1
    print(f"sigobs audit verify: intact: {report.rows} rows of {report.writers} writers")
    return 0


def _purge(store: Store, args: argparse.Namespace) -> int:
    from .chain import purge

    cut = when(args.older_than)
    deleted = purge(store, _chainer(), cut)
    print(f"sigobs audit purge: {deleted} rows older than {cut} deleted; checkpoints kept, the rest verifiable")
    return 0


def _csv_cell(value: Any) -> Any:
    """A CSV cell: empty for NULL, and a NUL character written as ``\\x00`` (a hostile name can hold
    one; Python 3.10's csv module refuses to write it, and no SIEM wants it raw)."""
    if value is None:
        return ""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\\x00")
    return value


def _export(store: Store, args: argparse.Namespace) -> int:
    clause, params = where(args)
    rows = store.iterate(_SELECT + clause + " ORDER BY time, id", params)
    out: TextIO = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
    try:
        if args.format == "jsonl":
            for row in rows:
                out.write(orjson.dumps(as_record(row)).decode() + "\n")
        else:
            writer = csv.writer(out)
            writer.writerow([FIELD_NAMES[c] for c in COLUMNS])
            for row in rows:
                writer.writerow([_csv_cell(v) for v in row[1:]])
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


_COMMANDS = {"list": _list, "stats": _stats, "verify": _verify, "purge": _purge, "export": _export}
