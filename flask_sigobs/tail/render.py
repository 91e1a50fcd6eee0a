"""One readable line per event, chosen by what the event means.

The generic JSON viewers print every key of every line; this one knows that an access line is
read as "method path status duration user", an auth event as "who, from where, what happened",
an exception as "type: message, and the app frame that raised". Each known event has a *kind*
that leads with those fields; any key the kind does not account for follows as ``key=value``,
so nothing is hidden that was not known to be noise (``-v`` shows even that).

Speed matters here: rendering is paid on every shown line. The rules that keep it cheap are
caches for what repeats (the level's text, an event name's padded text, the converted second),
one ``keys() - known`` set difference to find the extra keys, and escaping that costs one C
call for the value that needs none.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from orjson import dumps

from . import records as r
from .clock import Clock
from .records import Record
from .stack import compact, failures
from .terminal import Palette, escape

# Keys that every line carries and that the line shows in its own way (or that are noise for
# a person: the span id, the service name on a one-service log, the user agent).
ALWAYS_HIDDEN = frozenset({r.TIMESTAMP, r.LEVEL, r.EVENT, r.TRACE_ID, r.SPAN_ID, r.REQUEST_ID,
                           "service.name", "logger", "severity", "levelname"})
# With -v every key is shown, but not twice: these already are.
VERBOSE_SHOWN = frozenset({r.TIMESTAMP, r.LEVEL, r.EVENT})

EVENT_WIDTH = 22
VALUE_LIMIT = 2000  # characters of one value shown without -v (a 1 MB value is still one line)
_HEX = frozenset("0123456789abcdefABCDEF")
_PLAIN_VALUE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:@+<>*,")


def duration_text(ms: Any) -> str:
    if type(ms) not in (int, float):
        return ""
    if ms < 1:
        return f"{ms:.3f}ms"
    if ms < 10:
        return f"{ms:.2f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return f"{ms / 1000:.2f}s"


def _hex_id(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= 64 and _HEX.issuperset(value)


def jaeger_link(base: str, trace_id: Any) -> str | None:
    """``URL/trace/<id>`` for a well-formed trace id (a log value never reaches a URL unchecked)."""
    if not base or not _hex_id(trace_id):
        return None
    return f"{base.rstrip('/')}/trace/{trace_id.lower()}"


class Renderer:
    """Turns records (and raw lines) into text for a person. Holds the caches, so keep one."""

    def __init__(self, palette: Palette, clock: Clock, *, fields: list[str] | None = None,
                 verbose: bool = False, jaeger: str | None = None, cwd: str | None = None,
                 value_limit: int = VALUE_LIMIT) -> None:
        self.p = palette
        self.clock = clock
        self.fields = fields or None
        self.verbose = verbose
        self.jaeger = (jaeger or "").rstrip("/")
        self.cwd = cwd if cwd is not None else os.getcwd()
        self.limit = 10**12 if verbose else value_limit
        self.current_date = ""
        self.first_divider: str | None = None
        self._levels: dict[Any, str] = {}
        self._events: dict[Any, str] = {}
        self._statuses: dict[int, str] = {}
        self._durations: dict[float, str] = {}  # an int and the equal float read the same
        self._user_key = f" {palette.key}user={palette.reset}"
        self._time_open = palette.dim
        self._time_close = palette.reset + " "
        self._trace_open = palette.trace
        self._trace_close = palette.reset + " "
        self._header_open = f"{palette.bold}──{palette.reset} {palette.dim}"
        hidden = VERBOSE_SHOWN if verbose else ALWAYS_HIDDEN

        def known(shown: frozenset[str], consumed: frozenset[str]) -> frozenset[str]:
            """The keys a kind accounts for: with -v only those it shows, else also its noise."""
            return (shown if verbose else consumed) | hidden

        self._kinds: dict[str, tuple[Callable[[Record], str], frozenset[str]]] = {
            r.REQUEST_FINISHED: (self._request_finished, known(_REQUEST_SHOWN, _REQUEST_CONSUMED)),
            r.REQUEST_STARTED: (self._request, known(_STARTED_SHOWN, _STARTED_CONSUMED)),
            r.GOT_EXCEPTION: (self._got_exception, known(_EXCEPTION_SHOWN, _EXCEPTION_CONSUMED)),
            "flask.template_rendered": (self._template, known(_TEMPLATE_KEYS, _TEMPLATE_KEYS)),
            "flask.before_render_template": (self._template, known(_TEMPLATE_KEYS, _TEMPLATE_KEYS)),
            "flask.message_flashed": (self._flash, known(_FLASH_KEYS, _FLASH_KEYS)),
        }
        self._known_auth = known(_AUTH_SHOWN, _AUTH_CONSUMED)
        self._known_generic = _GENERIC_CONSUMED | hidden
        self._known_message = _MESSAGE_CONSUMED | hidden

    # -- values ------------------------------------------------------------------------------

    def text(self, value: Any) -> str:
        """A value from the log as safe, bounded text."""
        if type(value) is str:
            if len(value) <= self.limit and value.isprintable():
                return value
            return self._clip(escape(value))
        if value is None:
            return "null"
        if value is True:
            return "true"
        if value is False:
            return "false"
        if type(value) in (int, float):
            return repr(value)
        return self._clip(escape(dumps(value, default=str).decode()))

    def _clip(self, text: str) -> str:
        if len(text) <= self.limit:
            return text
        return f"{text[:self.limit]}{self.p.dim}…(+{len(text) - self.limit} chars, -v shows all){self.p.reset}"

    def pair(self, key: str, value: Any) -> str:
        """``key=value``, the value quoted when it holds anything but plain characters (quoting
        first, escaping after: a control character shows as ``\\x1b``, a quote as ``\\"``)."""
        if type(value) is str and (not value or not _PLAIN_VALUE.issuperset(value)):
            text = self.text('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            text = self.text(value)
        return f"{self.p.key}{escape(key)}={self.p.reset}{text}"

    def extras(self, record: Record, known: frozenset[str]) -> str:
        extra = record.keys() - known
        if not extra:
            return ""
        return " " + " ".join(self.pair(k, v) for k, v in record.items() if k in extra)

    # -- the line ----------------------------------------------------------------------------

    def level_text(self, record: Record) -> str:
        value = record.get(r.LEVEL)
        text = self._levels.get(value)
        if text is None:
            rank = r.level_rank(record)
            name = record.get(r.LEVEL, record.get("severity", record.get("levelname", "")))
            label = {50: "CRIT", 40: "ERROR", 30: "WARN", 20: "INFO", 10: "DEBUG"}.get(rank or -1)
            label = label or escape(str(name)).upper()[:5] or "-"
            text = f"{self.p.level(rank)}{label:<5}{self.p.reset}"
            if type(value) is str or value is None:
                if len(self._levels) > 256:
                    self._levels.clear()
                self._levels[value] = text
        return text

    def event_text(self, record: Record) -> str:
        name = record.get(r.EVENT)
        if name is None:
            name = record.get("message", record.get("msg"))
        logger = record.get("logger")
        if logger is None and type(name) is str:
            text = self._events.get(name)
            if text is not None:
                return text
        p = self.p
        safe = self.text(name) if name is not None else ""
        if logger is not None or " " in safe or not safe:
            # a message from the app's own logging: read as a sentence, not as a column
            prefix = f"{p.dim}{self.text(logger)}:{p.reset} " if logger is not None else ""
            return f"{prefix}{safe}"
        colour = p.auth_event if safe.startswith("auth.") else p.event
        text = f"{colour}{safe:<{EVENT_WIDTH}}{p.reset}"
        if type(name) is str and logger is None:
            if len(self._events) > 4096:
                self._events.clear()
            self._events[name] = text
        return text

    def divider(self, date: str) -> str:
        """A date line when the day changes: lines show only the time of day."""
        if not date or date == self.current_date:
            return ""
        self.current_date = date
        if self.first_divider is None:
            self.first_divider = date
        return self.divider_text(date)

    def divider_text(self, date: str) -> str:
        zone = "UTC" if self.clock.utc else "local time"
        return f"{self.p.dim}── {date} ({zone}) ──{self.p.reset}\n"

    def forget_date(self) -> None:
        """Start as if no line had been shown (a block rendered apart from the ones before)."""
        self.current_date = ""
        self.first_divider = None

    def record(self, record: Record, *, indent: str = "", trace_column: bool = True) -> str:
        """The record as one line (plus a compact stack trace under an exception)."""
        get = record.get
        clock = self.clock
        stamp = get("timestamp")
        # the clock's fast path, inlined: a line of the same second as the one before
        if type(stamp) is str and len(stamp) == 27 and stamp[:19] == clock._last_key and stamp[20:23].isdigit():
            hms = clock._last_hms + stamp[19:23]
        else:
            hms = clock.time(stamp)
        head = self.divider(clock.date) if clock.date != self.current_date and not indent else ""
        trace = ""
        if trace_column:
            tid = get("trace_id")
            short = tid[:8] if type(tid) is str else None
            if short is not None and len(short) == 8 and short.isalnum():
                trace = f"{self._trace_open}{short}{self._trace_close}"
            else:
                trace = "         "
        name = get("event")
        level = get("level")
        level = self._levels.get(level) if type(level) is str else None
        if level is None:
            level = self.level_text(record)
        event = self._events.get(name) if type(name) is str and "logger" not in record else None
        if event is None:
            event = self.event_text(record)
        if self.fields:
            details = self._fields(record)
            stack = ""
        else:
            kind = self._kinds.get(name) if type(name) is str else None
            if kind is not None:
                render, known = kind
                details = render(record)
            elif type(name) is str and name.startswith("auth."):
                details = self._auth(record)
                known = self._known_auth
            else:
                details = ""
                known = self._known_generic if "event" in record else self._known_message
            if not known.issuperset(record):
                details += self.extras(record, known)
            stack = self.stack(record, indent) if "exception" in record or "exception.type" in record else ""
        return f"{head}{indent}{self._time_open}{hms}{self._time_close}{level} {trace}{event}{details}{stack}"

    def _fields(self, record: Record) -> str:
        shown = []
        for name in self.fields or ():
            value = r.lookup(record, name, None)
            if value is not None:
                shown.append(self.pair(name, value))
        return " " + " ".join(shown) if shown else ""

    # -- kinds -------------------------------------------------------------------------------

    def _request(self, record: Record) -> str:
        """`` METHOD path?query``: the request as a person reads it."""
        get = record.get
        method = get("http.request.method")
        path = get("url.path")
        if path is None:
            path = get("http.route", "")
        query = get("url.query")
        if type(method) is not str or not method.isalpha():
            method = "-" if method is None else self.text(method)
        if type(path) is not str or len(path) > self.limit or not path.isprintable():
            path = self.text(path)
        if query:
            return f" {method} {path}?{self.text(query)}"
        return f" {method} {path}"

    def _request_finished(self, record: Record, link: bool = True) -> str:
        p = self.p
        get = record.get
        method = get("http.request.method")
        path = get("url.path")
        if (type(method) is str and type(path) is str and "url.query" not in record and method.isalpha()
                and len(path) <= self.limit and path.isprintable()):
            request = f" {method} {path}"  # the common case, without a call
        else:
            request = self._request(record)
        status = get("http.response.status_code")
        if type(status) is int:
            status_text = self._statuses.get(status)
            if status_text is None:
                status_text = self._statuses[status] = f" {p.status(status)}{status}{p.reset}"
        else:
            status_text = f" {self.text(status)}" if status is not None else ""
        ms = get("duration_ms")
        if type(ms) is float or type(ms) is int:
            duration = self._durations.get(ms)  # formatting a float costs more than the lookup
            if duration is None:
                if ms < 1:
                    duration = f" {ms:.3f}ms"
                elif ms < 10:
                    duration = f" {ms:.2f}ms"
                elif ms < 300:
                    duration = f" {ms:.0f}ms"
                else:
                    duration = f" {p.duration(ms)}{duration_text(ms)}{p.reset}"
                if len(self._durations) >= 65536:
                    self._durations.clear()
                self._durations[ms] = duration
        else:
            duration = ""
        user = get("enduser.id")
        if user is None:
            user_text = ""
        else:
            if type(user) is not str or len(user) > self.limit or not user.isprintable():
                user = self.text(user)
            user_text = f"{self._user_key}{user}"
        if self.jaeger and link:
            url = jaeger_link(self.jaeger, get("trace_id"))
            if url:
                return f"{request}{status_text}{duration}{user_text}  {p.blue}{p.underline}{url}{p.reset}"
        return f"{request}{status_text}{duration}{user_text}"

    def _got_exception(self, record: Record) -> str:
        p = self.p
        kind = self.text(record.get(r.EXC_TYPE, "Exception"))
        message = record.get(r.EXC_MESSAGE)
        out = f" {p.bold_red}{kind}{p.reset}"
        if message not in (None, ""):
            out += f": {self.text(message)}"
        if r.METHOD in record or r.PATH in record:
            out += f" {p.key}in{p.reset}{self._request(record)}"
        return out

    def _template(self, record: Record) -> str:
        name = record.get("template.name")
        return f" {self.text(name)}" if name is not None else ""

    def _flash(self, record: Record) -> str:
        category = record.get("flask.flash.category")
        return f" {self.p.key}category={self.p.reset}{self.text(category)}" if category is not None else ""

    def _auth(self, record: Record) -> str:
        p = self.p
        parts = []
        user = record.get(r.USER)
        if user is not None:
            parts.append(f"{p.key}user={p.reset}{p.bold}{self.text(user)}{p.reset}")
        client = record.get(r.CLIENT)
        if client is not None:
            parts.append(f"{p.key}from={p.reset}{self.text(client)}")
        return " " + " ".join(parts) if parts else ""

    # -- stack traces ------------------------------------------------------------------------

    def stack(self, record: Record, indent: str) -> str:
        p = self.p
        lines: list[str] = []
        pad = indent + "      "
        found = failures(record)
        for number, failure in enumerate(found):
            # our got_request_exception says type and message on its line; others say it here
            if number or record.get(r.EVENT) != r.GOT_EXCEPTION:
                lines.append(f"{pad}{p.bold_red}{self.text(failure.type)}{p.reset}: {self.text(failure.message)}")
            for kind, text in compact(failure, verbose=self.verbose, cwd=self.cwd):
                if kind == "app":
                    lines.append(f"{pad}  {p.key}at{p.reset} {self.text(text)}")
                elif kind == "lib":
                    lines.append(f"{pad}  {p.dim}at {self.text(text)}{p.reset}")
                else:
                    lines.append(f"{pad}  {p.dim}{self.text(text)}{p.reset}")
        return "\n" + "\n".join(lines) if lines else ""

    # -- raw lines and blocks ----------------------------------------------------------------

    def raw(self, line: bytes, *, indent: str = "") -> str:
        """A line that is not a JSON object: shown, marked, escaped (never dropped, never raw)."""
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        p = self.p
        if text.lstrip().startswith("{"):
            return f"{indent}{p.yellow}»{p.reset} {p.yellow}[not valid JSON]{p.reset} {self.text(text)}"
        return f"{indent}{p.dim}»{p.reset} {self.text(text)}"

    def header(self, records: list[Record], end: Record | None, note: str = "") -> str:
        """The first line of a ``--by-request`` block: the request as the access line says it."""
        first = records[0] if records else (end if end is not None else {})
        source = end if end is not None else first
        clock = self.clock
        stamp = source.get("timestamp")
        # the clock's fast path, inlined (as in record)
        if type(stamp) is str and len(stamp) == 27 and stamp[:19] == clock._last_key and stamp[20:23].isdigit():
            hms = clock._last_hms + stamp[19:23]
        else:
            hms = clock.time(stamp)
        head = self.divider(clock.date) if clock.date != self.current_date else ""
        if end is not None and (len(records) < 2 or (r.USER in end and r.METHOD in end)):
            summary = end  # the access line says it all (the common case: keep it cheap)
        elif end is not None and r.METHOD in end and r.PATH in end:
            summary = end  # only the user may be on another line (the login's auth event)
            for record in records:
                user = record.get(r.USER)
                if user is not None:
                    summary = {**end, r.USER: user}
                    break
        else:
            summary = dict(first)
            for record in records:  # method and path may be on any line; the end line wins
                for key in (r.METHOD, r.PATH, r.ROUTE, r.QUERY, r.USER):
                    if key in record and key not in summary:
                        summary[key] = record[key]
            if end is not None:
                summary.update(end)
            if r.USER not in summary:
                for record in records:
                    if r.USER in record:
                        summary[r.USER] = record[r.USER]
                        break
        return self._header_line(head, hms, source, summary, note)

    def access_header(self, end: Record) -> str:
        """The header of a request that has only its access line (the usual one at level
        info): the same line as :meth:`header`, on the short path."""
        clock = self.clock
        stamp = end.get("timestamp")
        if type(stamp) is str and len(stamp) == 27 and stamp[:19] == clock._last_key and stamp[20:23].isdigit():
            hms = clock._last_hms + stamp[19:23]
        else:
            hms = clock.time(stamp)
        head = self.divider(clock.date) if clock.date != self.current_date else ""
        return self._header_line(head, hms, end, end, "")

    def _header_line(self, head: str, hms: str, source: Record, summary: Record, note: str) -> str:
        p = self.p
        level = source.get(r.LEVEL)
        level = self._levels.get(level) if type(level) is str else None
        if level is None:
            level = self.level_text(source)
        get = summary.get
        method = get("http.request.method")
        path = get("url.path")
        if (type(method) is str and type(path) is str and "url.query" not in summary and method.isalpha()
                and len(path) <= self.limit and path.isprintable()):
            # _request_finished(summary, link=False) inlined, when its parts are already cached
            status = get("http.response.status_code")
            status_text = self._statuses.get(status) if type(status) is int else None
            ms = get("duration_ms")
            duration = self._durations.get(ms) if type(ms) is float or type(ms) is int else None
            user = get("enduser.id")
            if status_text is None or duration is None or (user is not None and (
                    type(user) is not str or len(user) > self.limit or not user.isprintable())):
                details = self._request_finished(summary, link=False)
            elif user is None:
                details = f" {method} {path}{status_text}{duration}"
            else:
                details = f" {method} {path}{status_text}{duration}{self._user_key}{user}"
        elif r.METHOD in summary or r.PATH in summary:
            details = self._request_finished(summary, link=False)
        else:
            details = f" {p.dim}(no access line){p.reset}"
        tid = summary.get(r.TRACE_ID)
        short = tid[:8] if type(tid) is str else None
        trace = f" {self._trace_open}{short}{p.reset}" if short is not None and len(short) == 8 and short.isalnum() else ""
        flag = f" {p.yellow}({note}){p.reset}" if note else ""
        link = ""
        if self.jaeger:
            url = jaeger_link(self.jaeger, tid)
            if url:
                link = f"  {p.blue}{p.underline}{url}{p.reset}"
        return f"{head}{self._header_open}{hms}{self._time_close}{level}{details}{trace}{flag}{link}"

    def block(self, records: list[Record], end: Record | None, note: str = "", dropped: int = 0) -> str:
        lines = [self.header(records, end, note)]
        for record in records:
            if record is end and not self.verbose:
                continue
            lines.append(self.record(record, indent="   ", trace_column=False))
        if dropped:
            lines.append(f"   {self.p.dim}… {dropped} more lines of this request not kept{self.p.reset}")
        return "\n".join(lines)


_REQUEST_SHOWN = frozenset({r.METHOD, r.PATH, r.QUERY, r.STATUS, r.DURATION, r.USER})
_REQUEST_CONSUMED = _REQUEST_SHOWN | {r.ROUTE, r.CLIENT, r.USER_AGENT, "http.response.body.size"}
_STARTED_SHOWN = frozenset({r.METHOD, r.PATH, r.QUERY})
_STARTED_CONSUMED = _STARTED_SHOWN | {r.ROUTE, r.CLIENT, r.USER_AGENT}
_EXCEPTION_SHOWN = frozenset({r.EXC_TYPE, r.EXC_MESSAGE, r.METHOD, r.PATH, r.QUERY,
                              "exception.frames", "exception.stacktrace", "exception.escaped"})
_EXCEPTION_CONSUMED = _EXCEPTION_SHOWN | {r.ROUTE, r.CLIENT, r.USER_AGENT}
_TEMPLATE_KEYS = frozenset({"template.name"})
_FLASH_KEYS = frozenset({"flask.flash.category"})
_AUTH_SHOWN = frozenset({r.USER, r.CLIENT})
_AUTH_CONSUMED = _AUTH_SHOWN | {r.USER_AGENT}
_GENERIC_CONSUMED = frozenset({"exception"})
_MESSAGE_CONSUMED = frozenset({"exception", "message", "msg"})  # the message stood in for event
