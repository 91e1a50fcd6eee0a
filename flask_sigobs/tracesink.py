"""The trace sink: one event in, one span event (and status, exception, user) on the request span."""

from __future__ import annotations

from typing import Any

import orjson
from opentelemetry.trace import Status, StatusCode

from .events import Event
from .fastspan import PRIMITIVES, add_event, public_add_event
from .redaction import Redactor, cut


#: What the server span already carries as its own attributes: the request events' span events
#: don't repeat it (the log line, read on its own, does). Each repeated attribute costs the SDK a
#: validation pass per event.
SPAN_OWN_KEYS = frozenset({"http.request.method", "url.path", "http.route", "url.query", "client.address",
                           "user_agent.original"})
REQUEST_EVENTS = frozenset({"flask.request_started", "flask.request_finished", "flask.got_request_exception"})
_SKIP_ALWAYS = frozenset({"exception.frames"})  # the text stack trace says it on the span
_SKIP_REQUEST = _SKIP_ALWAYS | SPAN_OWN_KEYS


def span_attributes(attributes: dict[str, Any], skip: frozenset[str] = _SKIP_ALWAYS,
                    max_length: int | None = None) -> dict[str, Any]:
    """Span attributes must be primitives or flat lists of one primitive type: encode the rest
    (as JSON text, cut at ``max_length`` like every other string)."""
    out = {}
    for key, value in attributes.items():
        if value is None or key in skip:
            continue
        if type(value) in PRIMITIVES:
            out[key] = value
        elif isinstance(value, list) and value and all(type(v) is type(value[0]) for v in value) \
                and type(value[0]) in PRIMITIVES:
            out[key] = value
        else:
            text = orjson.dumps(value, default=str).decode()
            out[key] = cut(text, max_length) if max_length is not None else text
    return out


class TraceSink:
    def __init__(self, record_exceptions: bool, redactor: Redactor, fast: bool = True, events: bool = True) -> None:
        """``fast``: span events the short way (``fastspan.add_event``), where the start-up check holds."""
        self._add_event = add_event if fast else public_add_event
        # opentelemetry-instrumentation-flask records the exception itself when the request's
        # span ends with it; recording it here too would show it twice in Jaeger.
        self._record_exceptions = record_exceptions
        self._max_length = redactor.max_length
        self._longest = redactor.longest
        #: SIGOBS_SPAN_EVENTS: false keeps events off the span (a team reading them from its log
        #: store); the exception, the error status and the user still go on it
        self._events = events

    def emit(self, span: Any, event: Event) -> None:
        if not span.is_recording():
            return
        attributes = event.attributes
        if not self._events:
            self._without_events(span, event)
            return
        values = event.span_attributes
        if values is None:
            skip = _SKIP_REQUEST if event.name in REQUEST_EVENTS else _SKIP_ALWAYS
            values = span_attributes(attributes, skip, self._max_length)
        if event.exception is None:
            self._add_event(span, event.name, values, event.time_ns, self._longest)
        else:  # its stack trace is longer than our values: the SDK's limits apply
            span.add_event(event.name, values, timestamp=event.time_ns)
            if self._record_exceptions:
                span.record_exception(event.exception, timestamp=event.time_ns)
            span.set_status(Status(StatusCode.ERROR, f"{attributes['exception.type']}: "
                                                     f"{attributes['exception.message']}"))
        user = event.span_user  # not the attributes' enduser.id: a failed login's is only a claim
        if user is not None:
            span.set_attribute("enduser.id", user)

    def _without_events(self, span: Any, event: Event) -> None:
        if event.exception is not None:
            if self._record_exceptions:
                span.record_exception(event.exception, timestamp=event.time_ns)
            attributes = event.attributes
            span.set_status(Status(StatusCode.ERROR, f"{attributes['exception.type']}: "
                                                     f"{attributes['exception.message']}"))
        if event.span_user is not None:
            span.set_attribute("enduser.id", event.span_user)
