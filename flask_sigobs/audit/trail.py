"""The audit trail of one app: ``record`` on the request path, the writer thread off it.

``record`` builds the row (``rows.build``) and appends it to the journal: one ``os.write``, so the
row is safe from the process dying before the response goes out. The writer thread wakes every
``SIGOBS_AUDIT_FLUSH_INTERVAL``, reads the journal from where it last got to, and writes the rows
to the database in order, in batches, each batch in one transaction with the journal position it
reached and its writer's chain head. Then it counts failures (``bruteforce``) and adopts the
journals of processes that are gone. A database that is down only makes the journal longer (to
``SIGOBS_AUDIT_JOURNAL_MAX`` bytes, reported); the request never waits for it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable

import orjson

from ..errors import Tally, report_once
from . import journal as journals
from .bruteforce import OPEN, Detector, Lockout
from .chain import Chainer
from .rows import Protector, build, iso_time, protect
from .store import COLUMNS, INSERT, Store, StoreError, client_key, connect, safe_url

logger = logging.getLogger("flask_sigobs")
BATCH = 5000
ROTATE_SIZE = 8 << 20
ADOPT_EVERY = 5.0
IDLE_EXIT = 5.0
_DUMPS = orjson.dumps


class Trail:
    """One app's audit trail. ``settings`` is an ``AuditSettings``; ``alarm`` emits an event (the
    runtime's log line and span event) when brute force is detected."""

    def __init__(self, settings: Any, service_name: str, session_cookie: str,
                 alarm: Callable[[str, dict[str, Any], str | None, str | None], None] | None = None) -> None:
        self.settings = settings
        self.url = settings.url
        self.service_name = service_name
        self._session_cookie = session_cookie
        self._session_hashes: dict[str, str] = {}
        self.journal = journals.Journal(settings.journal, settings.journal_max)
        self.protector = Protector(settings.hash_key, settings.unknown_users)
        self.chainer = Chainer(settings.key)
        self.detector = Detector(settings.max_failures, settings.window)
        self._alarm = alarm
        self.rows_written = 0
        self.rows_bad = 0
        self.store_failures = 0
        self._heads: dict[str, tuple[int, str]] = {}
        self._own_position = 0  # of the current segment, in the database
        self._own_segment = 0
        self._segment_base = 0  # bytes of this process's earlier segments, all in the database
        self._store: Store | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = False
        self._flush_lock = threading.Lock()
        self._last_adopt = 0.0
        self._busy = time.monotonic()
        self._failures_seen = 0
        self._dropped = Tally(("audit", "dropped"), "flask-sigobs audit: %d rows could not be journaled "
                              "in the last %.0f s (journal full or disk full); see docs/audit.md")
        self._backlog_said = 0.0
        reference = weakref.ref(self)  # the hooks must not keep a trail (and its thread) alive
        atexit.register(lambda: (t := reference()) and t.close())
        os.register_at_fork(after_in_child=lambda: (t := reference()) and t._after_fork())
        if journals.orphans(settings.journal):  # left by a process that is gone: put them in now
            self._start()

    # -- the request path ------------------------------------------------------------------------

    def protect(self, name: str, attributes: dict[str, Any]) -> dict[str, Any]:
        """The attributes with a user name that matches no account (``reason="unknown_user"``)
        protected as the row keeps it: the log line and the span event say the same, so the
        password someone typed into the user field leaves the process nowhere."""
        try:
            return protect(name, attributes, self.protector)
        except Exception as exc:
            report_once(("audit", "protect", type(exc)), "flask-sigobs audit could not protect %s: %r", name, exc)
            return attributes

    def record(self, name: str, attributes: dict[str, Any], state: Any) -> None:
        """Journal one auth event (never raises). The request's whole share of the audit: what the
        row needs is taken as it is (the attributes are clean already) and written; the row itself
        is built by the writer thread (``_row``)."""
        try:
            if name == "auth.session_protected" and "enduser.id" not in attributes:
                return  # Flask-Login sends it for any anonymous session without its id: no one's decision
            if state is not None:
                trace_id, span_id, base, environ = state.trace_id, state.span_id, state.base, state.environ
                route = base.get("http.route") if base else None
            else:
                (trace_id, span_id), route, environ = _current_ids(), None, None
            cookie = environ.get("HTTP_COOKIE") if environ else None
            session = self._session_hash(cookie) if cookie else None
            if "reason" in attributes:  # only a refusal can carry an unknown name
                attributes = protect(name, attributes, self.protector)
            self.append((time.time_ns() // 1000, name, attributes, trace_id, span_id, route, session))
        except Exception as exc:
            report_once(("audit", "record", type(exc)), "flask-sigobs audit could not record %s: %r", name, exc)

    def _session_hash(self, cookie: str) -> str | None:
        value = _cookie(cookie, self._session_cookie)
        if not value:
            return None
        hashes = self._session_hashes  # a session comes back request after request: hashed once
        found = hashes.get(value)
        if found is None:
            if len(hashes) >= 4096:
                hashes.clear()
            found = hashes[value] = self.protector.digest("session:" + value)
        return found

    def append(self, record: tuple[Any, ...]) -> None:
        """One journal line: ``[time_us, event, attributes, trace_id, span_id, route, session hash]``."""
        try:
            line = _DUMPS(record) + b"\n"
        except TypeError:  # a value orjson refuses (a str subclass, an int beyond 64 bits): as text
            line = _DUMPS(record, default=str) + b"\n"
        try:
            if not self.journal.append(line):
                self._dropped.add()
        except OSError as exc:
            report_once(("audit", "journal", self.journal.directory, exc.errno), "flask-sigobs audit could not write its journal %s: %r",
                        self.journal.directory, exc)
            self._dropped.add()
        if self._thread is None:
            self._start()

    def check(self, user: str | None = None, address: str | None = None) -> Lockout:
        """Is this user, this address, or the pair locked out by brute-force detection, and for how
        long? A dictionary look-up: call it before trying a password, answer 429 with Retry-After."""
        detector = self.detector
        if self._thread is None:
            self._start()  # an idle writer ended: the locks other workers set are read again
        if not detector.locked_any():
            return OPEN  # the usual answer, without a hash or a clock read
        found = detector.check(user, address)
        if not found and user and self.protector.unknown_users == "hash":
            found = self.detector.check(self.protector.user(user), address)  # an unknown name's failures
        return found

    # -- the writer thread -----------------------------------------------------------------------

    def _start(self) -> None:
        with self._flush_lock:
            if self._thread is not None or self._stop:
                return
            # The thread holds the trail weakly: an app that is gone takes its writer with it.
            thread = threading.Thread(target=_write_on, args=(weakref.ref(self), self.settings.flush_interval),
                                      name="flask-sigobs-audit", daemon=True)
            self._thread = thread
            thread.start()

    def _idle(self, written: int) -> bool:
        """Whether the writer thread may end: nothing written for IDLE_EXIT seconds and nothing
        waiting. The next row (or ``check``) starts it again; an idle app keeps no thread."""
        now = time.monotonic()
        if written or self.journal.backlog or self.store_failures != self._failures_seen:
            self._failures_seen = self.store_failures
            self._busy = now
            return False
        if now - self._busy < IDLE_EXIT:
            return False
        with self._flush_lock:
            if self.journal.backlog:
                return False
            self._thread = None
            return True

    def flush(self, adopt: bool = False) -> int:
        """Put what the journal holds in the database now; the number of rows written. Safe to call
        from any thread (the writer thread does, every flush interval)."""
        with self._flush_lock:
            try:
                return self._flush(adopt)
            except Exception as exc:
                self.store_failures += 1
                self._drop_store()
                report_once(("audit", "store", self.url, type(exc)), "flask-sigobs audit cannot write to %s, rows wait "
                            "in the journal %s: %s", safe_url(self.url), self.journal.directory, exc)
                self._say_backlog()
                return 0

    def _flush(self, adopt: bool) -> int:
        store = self._connect()
        written = 0
        journal = self.journal
        path = journal.path
        if path is not None:
            if journal.segment != self._own_segment:
                self._own_segment, self._own_position = journal.segment, 0
            try:
                position, count = self._drain(store, path, journal.writer_id, self._own_position)
            except BaseException:
                self._own_position = 0  # a batch may have gone in before the failure: ask the database
                raise
            journal.flushed = self._segment_base + position
            self._own_position = position
            written += count
            self._rotate(store, path)
        now = time.monotonic()
        if adopt or now - self._last_adopt >= ADOPT_EVERY:
            self._last_adopt = now
            written += self._adopt(store)
        self.detector.refresh(store)
        return written

    def _connect(self) -> Store:
        if self._store is None:
            self._store = connect(self.url)
            fingerprint = self.chainer.fingerprint()
            with self._store.transaction():
                known = self._store.meta("key")
                if known is None:
                    self._store.set_meta("key", fingerprint)
            if known is not None and known != fingerprint:
                report_once(("audit", "key"), "flask-sigobs audit: %s was written with another "
                            "SIGOBS_AUDIT_KEY (or none); its chain can be verified only with that key",
                            safe_url(self.url))
        return self._store

    def _drop_store(self) -> None:
        store, self._store = self._store, None
        self._heads.clear()
        if store is not None:
            try:
                store.close()
            except Exception:
                pass

    def _drain(self, store: Store, path: str, writer: str, position: int) -> tuple[int, int]:
        """Rows of one segment from ``position`` into the database; (new position, rows)."""
        name = os.path.basename(path)
        if position == 0:
            found = store.query("SELECT position FROM sigobs_audit_journal WHERE name = :n", {"n": name})
            position = found[0][0] if found else 0
        total = 0
        batch: list[dict[str, Any]] = []
        end = position
        for end, line in journals.read_lines(path, position):
            row = self._row(line)
            if row is not None:
                batch.append(row)
            if len(batch) >= BATCH:
                self._insert(store, writer, name, end, batch)
                total += len(batch)
                batch = []
        if batch or end != position:
            self._insert(store, writer, name, end, batch)
            total += len(batch)
        return end, total

    def _row(self, line: bytes) -> dict[str, Any] | None:
        if not line.strip():
            return None
        try:
            time_us, name, attributes, trace_id, span_id, route, session = orjson.loads(line)
            row = build(name, attributes, int(time_us), trace_id, span_id, self.service_name, route, session)
            data = row["data"]
            if data is not None:
                text = orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()
                if len(text) > self.settings.max_data:
                    text = orjson.dumps({"truncated": True, "bytes": len(text)}).decode()
                row["data"] = text
            for key in COLUMNS:
                value = row[key]
                if value is not None and value.__class__ is not str:
                    row[key] = str(value)
            row["client_key"] = client_key(row["client_address"])
            return row
        except Exception as exc:
            self.rows_bad += 1
            report_once(("audit", "bad line"), "flask-sigobs audit skipped a journal line it cannot read "
                        "(a crash cut it, or the file was edited): %r", exc)
            return None

    def _insert(self, store: Store, writer: str, name: str, position: int, batch: list[dict[str, Any]]) -> None:
        with store.transaction():
            head = self._heads.get(writer)
            if head is None or writer != self.journal.writer_id:  # another process's: read it afresh
                found = store.query("SELECT seq, hash FROM sigobs_audit_writer WHERE writer = :w", {"w": writer})
                head = (found[0][0], found[0][1]) if found else (0, "")
            seq, previous = head
            row_hash = self.chainer.row_hash
            for row in batch:
                seq += 1
                previous = row_hash(previous, writer, seq, tuple(row[c] for c in COLUMNS))
                row["writer"], row["seq"], row["hash"] = writer, seq, previous
            if batch:
                store.executemany(INSERT, batch)
                store.execute("INSERT INTO sigobs_audit_writer (writer, seq, hash, time) VALUES (:w, :s, :h, :t) "
                              "ON CONFLICT (writer) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
                              "time = excluded.time", {"w": writer, "s": seq, "h": previous, "t": batch[-1]["time"]})
            store.execute("INSERT INTO sigobs_audit_journal (name, position) VALUES (:n, :p) "
                          "ON CONFLICT (name) DO UPDATE SET position = excluded.position", {"n": name, "p": position})
        self._heads[writer] = (seq, previous)
        self.rows_written += len(batch)
        if batch:
            try:
                self.detector.observe(store, batch, self._on_alarm)
            except Exception as exc:
                report_once(("audit", "detect", type(exc)), "flask-sigobs audit could not count failures: %r", exc)

    def _rotate(self, store: Store, path: str) -> None:
        """A segment all in the database and big: a new one, and the old one deleted."""
        journal = self.journal
        if journal.size < ROTATE_SIZE:
            return
        with journal.lock:
            if journal.path != path or journal.size != self._own_position:
                return  # rows came in meanwhile: next time
            self._segment_base += journal.size
            journal.open_segment()
        self._own_position = 0
        os.unlink(path)
        store.execute("DELETE FROM sigobs_audit_journal WHERE name = :n", {"n": os.path.basename(path)})

    def _adopt(self, store: Store) -> int:
        """The journals nobody holds any more (their process is gone): into the database, then deleted."""
        written = 0
        own = self.journal.path
        for path, writer, _ in journals.segments(self.journal.directory):
            if path == own:
                continue
            fd = journals.adopt(path)
            if fd is None:
                continue
            try:
                _, count = self._drain(store, path, writer, 0)
                written += count
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                store.execute("DELETE FROM sigobs_audit_journal WHERE name = :n", {"n": os.path.basename(path)})
            finally:
                os.close(fd)
        return written

    def _say_backlog(self) -> None:
        now = time.monotonic()
        if now - self._backlog_said >= 60:
            self._backlog_said = now
            logger.warning("flask-sigobs audit: %d bytes of rows wait in the journal %s for the database",
                           self.backlog(), self.journal.directory)

    def backlog(self) -> int:
        """Bytes waiting in the journals of the directory (this process's and orphans')."""
        total = 0
        for path, _, _ in journals.segments(self.journal.directory):
            try:
                total += os.path.getsize(path)
            except OSError:
                pass
        return max(total - (self._own_position if self.journal.path else 0), 0)

    # -- brute force -------------------------------------------------------------------------------

    def _on_alarm(self, kinds: list[str], count: int, row: dict[str, Any]) -> None:
        """Raise ``auth.login_fail_max`` for what ``row`` (the failure that crossed the threshold)
        locked: a row of its own, and through the runtime a warning line and a span event."""
        attributes: dict[str, Any] = {"audit.lock.keys": kinds, "audit.failures": count,
                                      "audit.window_s": int(self.detector.window),
                                      "audit.max_failures": self.detector.max_failures}
        for source, target in (("enduser_id", "enduser.id"), ("client_address", "client.address"),
                               ("user_agent", "user_agent.original"), ("http_route", "http.route"),
                               ("request_id", "request.id")):
            if row.get(source):
                attributes[target] = row[source]
        self.append((time.time_ns() // 1000, "auth.login_fail_max", attributes, row.get("trace_id"),
                     row.get("span_id"), None, None))
        if self._alarm is not None:
            try:
                self._alarm("auth.login_fail_max", {"reason": "too_many_failures", **attributes},
                            row.get("trace_id"), row.get("span_id"))
            except Exception as exc:
                report_once(("audit", "alarm", type(exc)), "flask-sigobs audit could not raise "
                            "auth.login_fail_max: %r", exc)

    # -- life ------------------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Flush and stop (at exit: SIGTERM under gunicorn ends here)."""
        self._stop = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        path = self.journal.path
        if path is not None or journals.segments(self.journal.directory):
            self.flush(adopt=False)
        self._dropped.flush()
        if path is not None and self._store is not None and self.journal.backlog == 0:
            try:  # all in the database: the segment goes (still locked), so nobody adopts it for nothing
                os.unlink(path)
                self._store.execute("DELETE FROM sigobs_audit_journal WHERE name = :n", {"n": os.path.basename(path)})
            except Exception:
                pass
        self.journal.close()
        self.journal.path = None
        self._drop_store()

    def _after_fork(self) -> None:
        self.journal.forget_after_fork()
        self._thread = None
        self._store = None  # the parent's connection is the parent's: never used here
        self._heads = {}
        self._own_position = self._own_segment = self._segment_base = 0
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._dropped.reset()


def _write_on(reference: Any, interval: float) -> None:
    """The writer thread: a flush every ``interval`` while the trail lives and has work."""
    while True:
        trail = reference()
        if trail is None or trail._stop:
            return
        wake = trail._wake
        del trail  # not held while asleep
        wake.wait(interval)
        wake.clear()
        trail = reference()
        if trail is None or trail._stop:
            return
        written = trail.flush()
        if trail._idle(written):
            return
        del trail


def _cookie(header: str, name: str) -> str | None:
    if name not in header:
        return None
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip('"') or None
    return None


def _current_ids() -> tuple[str | None, str | None]:
    from opentelemetry import trace

    from ..requeststate import hex_ids

    return hex_ids(trace.get_current_span())
