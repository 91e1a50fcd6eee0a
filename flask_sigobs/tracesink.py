"""The trace sink: one event in, one span event (and status, exception, user) on the request span."""

from __future__ import annotations

from typing import Any

import orjson
from opentelemetry.trace import Status, StatusCode

from .events import Event

_PRIMITIVES = (str, bool, int, float)


def span_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Span attributes must be primitives or flat lists of one primitive type: encode the rest."""
    out = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if type(value) in _PRIMITIVES:
            out[key] = value
        elif isinstance(value, list) and value and all(type(v) is type(value[0]) for v in value) \
                and type(value[0]) in _PRIMITIVES:
            out[key] = value
        else:
            out[key] = orjson.dumps(value, default=str).decode()
    return out


class TraceSink:
    def __init__(self, record_exceptions: bool) -> None:
        # opentelemetry-instrumentation-flask records the exception itself when the request's
        # span ends with it; recording it here too would show it twice in Jaeger.
        self._record_exceptions = record_exceptions

    def emit(self, span: Any, event: Event) -> None:
        if not span.is_recording():
            return
        attributes = event.attributes
        if event.exception is not None:
            attributes = {k: v for k, v in attributes.items() if k != "exception.frames"}
        span.add_event(event.name, span_attributes(attributes), timestamp=event.time_ns)
        if event.exception is not None:
            if self._record_exceptions:
                span.record_exception(event.exception, timestamp=event.time_ns)
            span.set_status(Status(StatusCode.ERROR, f"{attributes['exception.type']}: "
                                                     f"{attributes['exception.message']}"))
        user = attributes.get("enduser.id")
        if user is not None:
            span.set_attribute("enduser.id", user)
