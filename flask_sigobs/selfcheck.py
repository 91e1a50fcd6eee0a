"""The start-up check of the short ways: ``fastspan`` against the installed SDK, ``headers`` against werkzeug.

Both modules read and write private fields (the SDK's span and event fields, werkzeug's
``Headers._list``) because the public calls cost several microseconds a request. Those fields are
not a contract: flask-sigobs takes the SDK and werkzeug by ranges, and a release may rename one.
So nothing is assumed: once per process, before the first app is attached, each short way does
the same work as the public API on throw-away objects and the two results are compared through
what an exporter (or a WSGI server) reads. Where they are the same the short way is used; where
anything differs or raises, the public API is, and one line on the ``flask_sigobs`` logger says
which and why (the short way says nothing: ``sigobs doctor`` does). The check costs a few
milliseconds, once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Iterator

logger = logging.getLogger("flask_sigobs")


@dataclass(frozen=True)
class Verdict:
    """Which way a part takes, and the sentence that says why."""

    fast: bool
    why: str

    @property
    def way(self) -> str:
        return "short way" if self.fast else "public API"


_lock = threading.Lock()
_verdicts: dict[str, Verdict] = {}


def spans() -> Verdict:
    """Whether ``fastspan``'s short way builds what the installed SDK builds (checked once)."""
    return _verdict("spans", _check_spans)


def headers() -> Verdict:
    """Whether ``headers``' short way reads and writes what werkzeug's ``Headers`` does (checked once)."""
    return _verdict("headers", _check_headers)


def fast_path_allowed(setting: str) -> bool:
    """``SIGOBS_FAST_PATH``: ``auto`` lets the checks decide; ``off`` takes the public API (said once)."""
    if setting == "auto":
        return True
    with _lock:
        said = "off" in _verdicts
        _verdicts["off"] = Verdict(False, "SIGOBS_FAST_PATH=off")
    if not said:
        try:
            logger.info("flask-sigobs: spans and response headers through the public API (SIGOBS_FAST_PATH=off)")
        except Exception:  # the logger's own destination may be what is broken
            pass
    return False


def reset() -> None:
    """Forget the verdicts (tests that change an internal check again)."""
    with _lock:
        _verdicts.clear()


def _verdict(part: str, check: Callable[[], Verdict]) -> Verdict:
    with _lock:
        verdict = _verdicts.get(part)
        if verdict is None:
            try:
                verdict = check()
            except Exception as exc:  # the check itself must never stop an app from starting
                verdict = Verdict(False, f"the start-up check failed: {type(exc).__name__}: {exc}")
            _verdicts[part] = verdict
            if not verdict.fast:  # the short way says nothing (`sigobs doctor` does); the fallback one line
                what = "spans" if part == "spans" else "response headers"
                try:
                    logger.warning("flask-sigobs: %s through the public API, slower (%s)", what, verdict.why)
                except Exception:  # the logger's own destination may be what is broken
                    pass
        return verdict


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except Exception:
        return "(version unknown)"


# -- the SDK ------------------------------------------------------------------------------------

#: What a request span starts with, and then gets: every kind of value flask-sigobs writes.
_START = {"http.request.method": "GET", "url.path": "/check", "http.route": "/check", "server.port": 80,
          "client.address": "127.0.0.1", "sampled.ratio": 0.5, "url.scheme": "http"}
_LATER = {"http.response.status_code": 500, "error.type": "500", "served": True}
_EVENTS = (("flask.request_started", {"request.id": "r-1"}, 2_000),
           ("auth.login_failed", {"enduser.id": "alice", "reason": "bad password", "attempt": 2}, 3_000),
           ("flask.request_finished", {}, 4_000))
#: The SDK's default limits, and limits tighter than the values above: each bound and its count.
_LIMITS = ({}, {"max_span_attributes": 5, "max_events": 2, "max_event_attributes": 2, "max_attribute_length": 4,
                "max_span_attribute_length": 4})


def _check_spans() -> Verdict:
    from . import fastspan

    sdk = f"opentelemetry-sdk {_version('opentelemetry-sdk')}"
    if fastspan._MISSING_INTERNALS is not None:
        return Verdict(False, f"{sdk}: {fastspan._MISSING_INTERNALS}")
    for limits in _LIMITS:
        try:
            with _quiet("opentelemetry"):  # the SDK says each value the tight limits cut: expected here
                problem = _compare_spans(limits)
        except Exception as exc:  # the short way (or the SDK's reading of its span) raised
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None:
            return Verdict(False, f"{sdk}: its span made the short way differs from the SDK's: {problem}")
    return Verdict(True, f"{sdk}: checked at start-up")


class _ThisThread(logging.Filter):
    """Drops the records of the thread that runs the check (another thread's still pass)."""

    def __init__(self) -> None:
        super().__init__()
        self._thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self._thread


@contextlib.contextmanager
def _quiet(prefix: str) -> Iterator[None]:
    """The SDK's loggers (``opentelemetry.*``) say nothing of the check's throw-away spans."""
    quiet = _ThisThread()
    loggers = [logging.getLogger(name) for name in ("opentelemetry.attributes", "opentelemetry.sdk.trace",
                                                    "opentelemetry.sdk.util", prefix)]
    for each in loggers:
        each.addFilter(quiet)
    try:
        yield
    finally:
        for each in loggers:
            each.removeFilter(quiet)


class _Kept:
    """A span exporter that keeps what it is given (the SDK's in-memory one, without its import)."""

    def __init__(self) -> None:
        self.spans: list[Any] = []

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _compare_spans(limits: dict[str, int]) -> str | None:
    """Make one request span three ways (the SDK's public API; the short way; the SDK's own span
    filled the short way) and return what differs between their exported forms, if anything."""
    from opentelemetry import context
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    from . import fastspan

    kept = _Kept()
    provider = TracerProvider(resource=Resource.create({"service.name": "flask-sigobs-check"}),
                              span_limits=SpanLimits(**limits), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(kept))  # type: ignore[arg-type]
    tracer = provider.get_tracer("flask_sigobs.selfcheck")
    longest = max(len(v) for values in (_START, _LATER, *(a for _, a, _ in _EVENTS))
                  for v in values.values() if isinstance(v, str))
    servers = fastspan.ServerSpans(tracer, longest)
    if not servers.direct:
        return "the SDK's own tracer is not one the short way knows"

    def public(span: Any) -> None:
        span.set_attributes(dict(_LATER))
        for name, attributes, when in _EVENTS:
            span.add_event(name, dict(attributes), timestamp=when)

    def short(span: Any) -> None:
        fastspan.set_attributes(span, dict(_LATER), longest)
        for name, attributes, when in _EVENTS:
            fastspan.add_event(span, name, dict(attributes), when, longest)

    made = []
    for start, fill in ((lambda: tracer.start_span("GET /check", context.Context(), SpanKind.SERVER,
                                                   dict(_START), start_time=1_000), public),
                        (lambda: servers.start("GET /check", context.Context(), dict(_START), 1_000), short),
                        (lambda: tracer.start_span("GET /check", context.Context(), SpanKind.SERVER,
                                                   dict(_START), start_time=1_000), short)):
        span = start()
        fill(span)
        span.set_attribute("enduser.id", "alice")
        span.record_exception(ValueError("check"), timestamp=5_000)
        span.set_status(Status(StatusCode.ERROR, "ValueError: check"))
        span.end(end_time=9_000)
        made.append(span)
    if len(kept.spans) != 3:
        return f"{len(kept.spans)} of 3 spans reached the exporter"
    if not isinstance(made[1], fastspan.RequestSpan):
        return "the short way made no request span"
    expected = _portrait(kept.spans[0])
    for label, span in (("request span", kept.spans[1]), ("SDK span filled the short way", kept.spans[2])):
        got = _portrait(span)
        for key in expected:
            if got.get(key) != expected[key]:
                return f"{label}: {key} {got.get(key)!r} != {expected[key]!r}"
    return None


def _portrait(span: Any) -> dict[str, Any]:
    """What an exporter reads of an ended span (its public ``ReadableSpan`` side), less its random ids."""
    ctx = span.context
    data = json.loads(span.to_json())
    for key in ("context", "parent_id"):
        data.pop(key, None)
    return {
        "name": span.name, "kind": span.kind, "parent": span.parent,
        "flags": int(ctx.trace_flags), "remote": ctx.is_remote, "state": tuple(ctx.trace_state.items()),
        "attributes": dict(span.attributes),
        "events": [(e.name, dict(e.attributes or {}), e.timestamp) for e in span.events],
        "links": list(span.links), "status": (span.status.status_code, span.status.description),
        "times": (span.start_time, span.end_time),
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "resource": dict(span.resource.attributes),
        "scope": (span.instrumentation_scope.name, span.instrumentation_scope.version),
        "json": data,
    }


# -- werkzeug -----------------------------------------------------------------------------------

#: Header lists a response may hold when flask-sigobs writes the request id and reads the length.
_HEADER_CASES = ([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "12")],
                 [("content-length", "not a number"), ("x-request-id", "the app's own")],
                 [("Content-Type", "text/html"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
                 [])


def _check_headers() -> Verdict:
    from werkzeug.datastructures import Headers
    from werkzeug.wrappers import Response

    from . import headers as fast

    werkzeug = f"werkzeug {_version('werkzeug')}"
    try:
        for pairs in _HEADER_CASES:
            ours, theirs = Response(), Response()
            ours.headers, theirs.headers = Headers(pairs), Headers(pairs)
            if fast.content_length(ours) != theirs.content_length:
                return Verdict(False, f"{werkzeug}: Content-Length read the short way differs from werkzeug's")
            fast.put_header(ours.headers, "X-Request-ID", "0f3c")
            theirs.headers["X-Request-ID"] = "0f3c"
            if ours.headers.to_wsgi_list() != theirs.headers.to_wsgi_list() \
                    or ours.headers.get("x-request-id") != "0f3c" or ours.content_length != theirs.content_length:
                return Verdict(False, f"{werkzeug}: a header written the short way differs from werkzeug's "
                                      f"({ours.headers.to_wsgi_list()!r} != {theirs.headers.to_wsgi_list()!r})")
    except Exception as exc:  # a field of Headers that is not there any more
        return Verdict(False, f"{werkzeug}: Headers is not as the short way expects: {type(exc).__name__}: {exc}")
    return Verdict(True, f"{werkzeug}: checked at start-up")
