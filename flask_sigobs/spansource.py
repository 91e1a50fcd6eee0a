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
from opentelemetry.trace import Status, StatusCode

from .events import exception_type
from .fastspan import ServerSpans, public_set_attributes, set_attributes
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
    #: Distinct (scheme, Host, port, protocol) whose span attributes are kept: a few per server.
    MAX_SERVERS = 64

    def __init__(self, tracer_provider: Any, longest: int, fast: bool = True) -> None:
        """``longest``: the longest text of our attribute values (``Redactor.longest``). ``fast``: the
        span made and filled the short way (``fastspan``), where the start-up check holds."""
        from . import __version__

        self._longest = longest
        self._spans = ServerSpans(tracer_provider.get_tracer("flask_sigobs", __version__), self._longest, fast)
        self._set_attributes = set_attributes if fast else public_set_attributes
        self._servers: dict[tuple[Any, ...], dict[str, Any]] = {}

    def start(self, state: RequestState, request: Any, start_time: int) -> None:
        """Open the server span for ``request`` and make it the current span."""
        environ = request.environ
        base = state.base  # built by request_started from the same request, every value bounded
        attributes = dict(base)
        del attributes["request.id"]
        method = environ.get("REQUEST_METHOD", "")
        route = base.get("http.route")
        if method in _KNOWN_METHODS:
            name = f"{method} {route}" if route is not None else f"{method} {base['url.path']}"
        else:
            attributes["http.request.method"] = "_OTHER"
            attributes["http.request.method_original"] = base["http.request.method"]
            name = "HTTP"
        attributes.update(self._server_attributes(environ, state.redactor))
        peer_port = environ.get("REMOTE_PORT")
        if peer_port and str(peer_port).isdigit():
            attributes["client.port"] = int(peer_port)

        # The parent: the caller's traceparent, or the current context (read once for both uses below).
        parent = propagate.extract(environ, getter=_GETTER) if "HTTP_TRACEPARENT" in environ else context.get_current()
        span = self._spans.start(name, parent, attributes, start_time)
        state.adopt(span)
        state.token = context.attach(trace.set_span_in_context(span, parent))

    def _server_attributes(self, environ: dict[str, Any], redactor: Any) -> dict[str, Any]:
        """Where the request was served: the same for nearly every request, so made once."""
        key = (environ.get("wsgi.url_scheme"), environ.get("HTTP_HOST") or environ.get("SERVER_NAME"),
               environ.get("SERVER_PORT"), environ.get("SERVER_PROTOCOL"))
        attributes = self._servers.get(key)
        if attributes is not None:
            return attributes
        scheme, host, port, protocol = key
        attributes = {"url.scheme": scheme or "http"}
        if host:  # as the standard instrumentation does: the Host header as sent, port included
            attributes["server.address"] = redactor.text(host)
        if port and port.isdigit():
            attributes["server.port"] = int(port)
        if protocol and protocol.startswith("HTTP/"):
            attributes["network.protocol.version"] = protocol[5:13]
        if len(self._servers) >= self.MAX_SERVERS:  # Host is the client's to choose: stay bounded
            self._servers.clear()
        self._servers[key] = attributes
        return attributes

    def response(self, state: RequestState, status_code: int) -> None:
        span = state.span
        if span is None or not span.is_recording():
            return
        attributes: dict[str, Any] = {"http.response.status_code": status_code}
        failed = status_code >= 500
        if failed and "error.type" not in span.attributes:
            attributes["error.type"] = str(status_code)
        self._set_attributes(span, attributes, self._longest)
        if failed and span.status.status_code is not StatusCode.ERROR:  # keep an exception's description
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
            if not any(event.name == "exception" for event in span.events):  # got_request_exception's, once
                span.record_exception(error)
            span.set_attribute("error.type", exception_type(error))
            try:
                description = f"{type(error).__name__}: {error}"
            except Exception:
                description = type(error).__name__
            span.set_status(Status(StatusCode.ERROR, description))
        if span.is_recording() and span.status.status_code is StatusCode.ERROR:
            scrub_span(span, state)  # a recorded exception's text may echo a request secret, or be huge
        span.end()
