"""What flask-sigobs remembers about one request while it runs.

Flask sends ``appcontext_pushed`` before a request context exists and ``appcontext_popped``
after it is gone, and the server span only exists between the ``before_request`` and
``teardown_request`` functions. The state below outlives all of that: the outermost WSGI
wrapper creates it, a context variable makes it reachable from every signal of the request, and
it carries what must be shared by all events of the request (request id, span, ids, user).
"""

from __future__ import annotations

import ipaddress
import random
import re
import time
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Sequence

STATE_KEY = "flask_sigobs.state"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")

EXCLUDED: Any = object()  # the state of a request on an excluded path: no events
FINISHED_ENVIRON: Any = MappingProxyType({})  # a finished request's state lets go of its environ

# The module's generator: Python reseeds it in every forked child, so gunicorn workers differ.
_random_bits = random.getrandbits

current: ContextVar["RequestState | None"] = ContextVar("flask_sigobs_request", default=None)


class RequestState:
    __slots__ = ("environ", "request_id", "service_name", "writer", "redactor", "started", "started_ns", "span", "trace_id", "span_id",
                 "pending", "user_id", "base", "finished", "token", "unhooked", "__weakref__",
                 "active", "status")  # the last two: set only when metrics are on (outputs/metrics.py)

    def __init__(self, environ: dict[str, Any], request_id: str, service_name: str, writer: Any,
                 redactor: Any) -> None:
        self.environ = environ
        self.request_id = request_id
        self.service_name = service_name
        self.writer = writer  # where the app's own log lines of this request go
        self.redactor = redactor  # and how they are redacted (the app's SIGOBS_REDACT_KEYS)
        self.started = time.perf_counter_ns()  # for the duration: monotonic
        self.started_ns = time.time_ns()  # wall clock, for the span's start
        self.span: Any = None
        self.trace_id: str | None = None
        self.span_id: str | None = None
        self.pending: Sequence[Any] = ()  # events waiting for the span (seldom any: none allocated until then)
        self.user_id: str | None = None
        self.base: dict[str, Any] | None = None  # request attributes, built once at request_started
        self.finished = False  # request_finished seen: later events no longer wait for the span
        self.token: Any = None  # the OpenTelemetry context token of a span we attached
        self.unhooked = False  # made by a signal: the request did not come through Flask.__call__

    def adopt(self, span: Any) -> None:
        """The request's server span, whichever source made it, and its ids for the log lines."""
        self.span = span
        self.trace_id, self.span_id = hex_ids(span)


def hex_ids(span: Any) -> tuple[str | None, str | None]:
    """The span's trace and span ids as Jaeger and the log lines spell them (None when invalid)."""
    # A SpanContext is a tuple (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid):
    # unpacked, its fields are read without a property call each.
    trace_id, span_id, _, _, _, is_valid = span.get_span_context()
    if not is_valid:
        return None, None
    return "%032x" % trace_id, "%016x" % span_id  # format() would parse its spec each time


def request_id_from(header_value: str | None) -> str:
    """The incoming id when it is a short, safe token; a fresh random one otherwise."""
    if header_value and _SAFE_REQUEST_ID.match(header_value):
        return header_value
    return "%032x" % _random_bits(128)  # unique, not secret: no need for os.urandom's syscall


_ADDRESS_CHARS = re.compile(r"[0-9A-Fa-f:.]{1,45}\Z")  # what an IPv4 or IPv6 address is made of
_UNSAFE_ADDRESS_CHAR = re.compile(r"[^\x21-\x7e]")


def client_address(environ: dict[str, Any], trusted_proxies: int) -> str:
    """The socket peer, or the ``X-Forwarded-For`` hop our trusted proxies vouch for.

    With ``trusted_proxies = N`` the N-th address from the right of ``X-Forwarded-For`` is the
    client (each trusted proxy appends the address it saw). Anything that is not an IP address
    is ignored, so a forged header cannot inject text into the logs. With ``0`` (the default)
    the header is not believed at all.

    werkzeug's ``ProxyFix`` rewrites ``REMOTE_ADDR`` from the same header (keeping the original
    in ``werkzeug.proxy_fix.orig``). When it has, ``REMOTE_ADDR`` already is the client it
    trusted: that answer is kept and ``trusted_proxies`` is not applied on top of it, so no hop
    is ever trusted twice and the log agrees with ``request.remote_addr``.
    """
    remote = environ.get("REMOTE_ADDR") or ""
    original = environ.get("werkzeug.proxy_fix.orig")
    fixed = isinstance(original, dict) and original.get("REMOTE_ADDR") != remote
    if trusted_proxies and not fixed:
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded:
            hops = forwarded.split(",")
            if len(hops) >= trusted_proxies:
                candidate = hops[-trusted_proxies].strip()
                try:
                    return str(ipaddress.ip_address(candidate))
                except ValueError:
                    pass
    if not remote or _ADDRESS_CHARS.match(remote):  # it can only be an address: as it is
        return remote
    return _printable_address(remote)


def _printable_address(value: str) -> str:
    """``REMOTE_ADDR`` bounded and escaped when it may not be an address (a unix socket's name, or
    whatever ``ProxyFix`` was told to believe)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return _UNSAFE_ADDRESS_CHAR.sub(lambda m: f"\\x{ord(m.group()):02x}", value[:256])
