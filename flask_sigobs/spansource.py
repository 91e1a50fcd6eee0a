"""``SIGOBS_SPAN_SOURCE=signals``: the server span built from the signals themselves.

opentelemetry-instrumentation-flask pays for a WSGI wrapper, a ``before_request`` and a
``teardown_request`` function, metrics instruments, SQL-commenter context and attribute
collection done twice. Here ``request_started`` opens the span (started at the moment our WSGI
wrapper saw the request), the response sets its status, and our WSGI wrapper ends it once every
signal of the request has fired. The span looks the same in Jaeger: the same stable HTTP
semantic-convention attributes, the same ``METHOD route`` name, the same status rules (5xx and
exceptions are errors, 4xx are not), and the W3C ``traceparent`` of the caller is honoured.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .events import exception_type
from .otel_setup import scrub_span
from .requeststate import RequestState

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE",
                            "PATCH", "QUERY"})


class _EnvironGetter:
    """Reads W3C ``traceparent``/``tracestate`` (and baggage) straight from the WSGI environ."""

    def get(self, environ: dict[str, Any], key: str) -> list[str] | None:
        value = environ.get("HTTP_" + key.upper().replace("-", "_"))
        return [value] if value is not None else None

    def keys(self, environ: dict[str, Any]) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in environ if k.startswith("HTTP_")]


_GETTER = _EnvironGetter()


class SignalSpanSource:
    def __init__(self, tracer_provider: Any) -> None:
        from . import __version__

        self._tracer = tracer_provider.get_tracer("flask_sigobs", __version__)

    def start(self, state: RequestState, request: Any, start_time: int) -> None:
        """Open the server span for ``request`` and make it the current span."""
        environ = request.environ
        base = state.base or {}
        method = environ.get("REQUEST_METHOD", "")
        rule = request.url_rule
        attributes: dict[str, Any] = {}
        if method in _KNOWN_METHODS:
            attributes["http.request.method"] = method
            name = f"{method} {rule.rule}" if rule is not None else f"{method} {environ.get('PATH_INFO', '')}"
        else:
            attributes["http.request.method"] = "_OTHER"
            attributes["http.request.method_original"] = base.get("http.request.method", "")
            name = "HTTP"
        attributes["url.scheme"] = environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME")
        if host:  # as the standard instrumentation does: the Host header as sent, port included
            attributes["server.address"] = host
        port = environ.get("SERVER_PORT")
        if port and port.isdigit():
            attributes["server.port"] = int(port)
        attributes["url.path"] = base.get("url.path", "")
        if "url.query" in base:
            attributes["url.query"] = base["url.query"]
        attributes["client.address"] = base.get("client.address", "")
        peer_port = environ.get("REMOTE_PORT")
        if peer_port and str(peer_port).isdigit():
            attributes["client.port"] = int(peer_port)
        if "user_agent.original" in base:
            attributes["user_agent.original"] = base["user_agent.original"]
        protocol = environ.get("SERVER_PROTOCOL", "")
        if protocol.startswith("HTTP/"):
            attributes["network.protocol.version"] = protocol[5:]
        if rule is not None:
            attributes["http.route"] = rule.rule

        parent = propagate.extract(environ, getter=_GETTER) if "HTTP_TRACEPARENT" in environ else None
        span = self._tracer.start_span(name, context=parent, kind=SpanKind.SERVER,
                                       attributes=attributes, start_time=start_time)
        state.adopt(span)
        state.token = context.attach(trace.set_span_in_context(span, parent))

    def response(self, state: RequestState, status_code: int) -> None:
        span = state.span
        if span is None or not span.is_recording():
            return
        span.set_attribute("http.response.status_code", status_code)
        if status_code >= 500:
            if "error.type" not in span.attributes:
                span.set_attribute("error.type", str(status_code))
            if span.status.status_code is not StatusCode.ERROR:  # keep an exception's description
                span.set_status(Status(StatusCode.ERROR))

    def detach(self, state: RequestState) -> None:
        """Leave the span's context; called where ``start`` attached it (same thread, same context)."""
        token, state.token = state.token, None
        if token is not None:
            context.detach(token)

    def end(self, state: RequestState, error: BaseException | None = None) -> None:
        span = state.span
        if span is None:
            return
        if error is not None and span.is_recording():  # an exception that escaped Flask itself
            span.record_exception(error)
            span.set_attribute("error.type", exception_type(error))
            try:
                description = f"{type(error).__name__}: {error}"
            except Exception:
                description = type(error).__name__
            span.set_status(Status(StatusCode.ERROR, description))
        scrub_span(span, state)  # what came from the raw exception: no request secret, bounded
        span.end()
