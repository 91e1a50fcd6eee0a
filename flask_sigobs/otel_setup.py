"""OpenTelemetry: the TracerProvider, the request span, and keeping that span open long enough.

The server span comes from opentelemetry-instrumentation-flask. It starts in a
``before_request`` function and ends in a ``teardown_request`` function, but Flask sends
``appcontext_pushed`` and ``request_started`` before the first and ``request_tearing_down``,
``appcontext_tearing_down`` and ``appcontext_popped`` after the second. Events fired before the
span exists wait in the request state (see ``extension``); for the ones after, :func:`hold_end`
defers the span's end until the WSGI call is over, so every event lands on its request's span.
"""

from __future__ import annotations

import math
from collections.abc import MutableSequence
import os
import time
import weakref
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Status, StatusCode

from .config import ConfigError
from .errors import report_once
from .fastspan import ServerSpanProvider
from .paths import PathPlan, redact_url_path
from .redaction import SECRETS_KEY, Redactor, cut, scrub
from .spanqueue import ExportQueue

OTEL_SPAN_KEY = "opentelemetry-flask.span_key"
_UNSET = object()

#: Seconds one export may take (``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`` / ``OTEL_EXPORTER_OTLP_TIMEOUT``,
#: read in seconds as the Python SDK does): a black-holed collector holds the export thread that
#: long, never longer than ``MAX_EXPORT_TIMEOUT``.
DEFAULT_EXPORT_TIMEOUT = 10.0
MAX_EXPORT_TIMEOUT = 30.0


#: Characters a span or span event attribute may hold when ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``
#: is not set (the SDK's default is no limit): an exception whose message is 10 MB would otherwise
#: be recorded, queued and exported whole, by the instrumentation's ``exception`` event.
MAX_ATTRIBUTE_LENGTH = 16384


def span_limits(environ: Any = None) -> SpanLimits:
    """The SDK's limits from the standard variables, with string attributes bounded by default."""
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"):
        return SpanLimits()
    return SpanLimits(max_attribute_length=MAX_ATTRIBUTE_LENGTH)


def export_timeout(environ: Any = None, signal: str = "TRACES") -> float:
    """The timeout in seconds of ``signal``'s exporter (``TRACES``, ``LOGS``, ``METRICS``): the
    standard variables (``OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT``, else ``OTEL_EXPORTER_OTLP_TIMEOUT``),
    bounded to (0, 30]."""
    environ = os.environ if environ is None else environ
    key = f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT" if environ.get(f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT") \
        else "OTEL_EXPORTER_OTLP_TIMEOUT"
    raw = environ.get(key)
    if not raw:
        return DEFAULT_EXPORT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        return DEFAULT_EXPORT_TIMEOUT
    if value > MAX_EXPORT_TIMEOUT:
        report_once("export_timeout", "flask-sigobs: an OTLP export timeout of %s s is too long; using %s s",
                    raw, MAX_EXPORT_TIMEOUT)
        return MAX_EXPORT_TIMEOUT
    return value


def otlp_exporter(environ: Any = None) -> SpanExporter | None:
    """The OTLP exporter the standard ``OTEL_EXPORTER_OTLP_*`` variables ask for, if any."""
    environ = os.environ if environ is None else environ
    kind = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if kind in ("none", ""):
        return None
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind != "otlp":
        raise ConfigError(f"OTEL_TRACES_EXPORTER: flask-sigobs sets up 'otlp', 'console' or 'none', not {kind!r}")
    if not (environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        return None
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        except ImportError as exc:
            key = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" if environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") \
                else "OTEL_EXPORTER_OTLP_PROTOCOL"
            raise ConfigError(f"{key}=grpc needs the OTLP/gRPC exporter, which is not installed ({exc}): "
                              "pip install 'flask-sigobs[grpc]', or use http/protobuf") from None

        return GrpcExporter(timeout=export_timeout(environ))
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter(timeout=export_timeout(environ), session=_ca_file_first_session())
    raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL must be 'http/protobuf' or 'grpc', not {protocol!r}")


def _ca_file_first_session() -> Any:
    """A requests session for the OTLP/HTTP exporter in which its CA file wins.

    The exporter gives its CA file (``OTEL_EXPORTER_OTLP_CERTIFICATE``) to its session as
    ``verify``, but requests lets ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE``, set on many
    machines, replace a session's ``verify`` (psf/requests#3829): the collector's certificate is
    then checked against the wrong CAs and every export fails. Proxies and the rest still come
    from the environment as usual, and without a CA file (``verify`` is then ``True``) it is
    requests' own session: which file, if any, is the exporter's to resolve.
    """
    import requests

    class CAFileFirstSession(requests.Session):
        def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if isinstance(self.verify, str) and verify in (None, True):  # no per-request choice made
                settings["verify"] = self.verify
            return settings

    return CAFileFirstSession()


def tracer_provider(service_name: str, exporter: SpanExporter | None) -> tuple[Any, str]:
    """The provider to use and who set it up: the app's own, untouched, or a new one of ours.

    A provider we created for another app is not reused: each app gets its own Resource, so one
    ``SigObs`` serving two apps reports two services.
    """
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider) and not getattr(current, "_sigobs_owned", False):
        return current, "app"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}), span_limits=span_limits())
    provider._sigobs_owned = True  # type: ignore[attr-defined]
    if exporter is None:
        exporter = otlp_exporter()
    if exporter is not None:
        provider.add_span_processor(ExportQueue(exporter))  # bounded, counts what it drops
    if isinstance(current, trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)  # flushed at exit: TracerProvider registers atexit
    return provider, "flask-sigobs"


#: The newest opentelemetry-instrumentation-flask the compatibility matrix (noxfile.py) has run: a
#: newer one is used as usual, and said once (raise this when the matrix passes on it).
NEWEST_TESTED_INSTRUMENTATION = "0.66b1"


def require_instrumentation() -> None:
    """``SIGOBS_SPAN_SOURCE=otel`` needs opentelemetry-instrumentation-flask: the ``[otel]`` extra."""
    try:
        import opentelemetry.instrumentation.flask  # noqa: F401
    except ImportError as exc:  # not installed, or a set that does not fit the SDK installed
        raise ConfigError("SIGOBS_SPAN_SOURCE=otel needs opentelemetry-instrumentation-flask, which cannot be "
                          f"imported ({exc}): pip install 'flask-sigobs[otel]'") from None
    _say_if_newer_than_tested()


def _say_if_newer_than_tested() -> None:
    from importlib import metadata

    try:
        from packaging.version import Version

        installed = metadata.version("opentelemetry-instrumentation-flask")
        newer = Version(installed) > Version(NEWEST_TESTED_INSTRUMENTATION)
    except Exception:  # no metadata (a vendored copy) or no packaging: nothing to compare
        return
    if newer:
        report_once("instrumentation_newer",
                    "flask-sigobs: opentelemetry-instrumentation-flask %s is newer than the newest it was tested "
                    "with (%s); its span is used as usual (`sigobs doctor` checks that events land on it)",
                    installed, NEWEST_TESTED_INSTRUMENTATION)


def instrument(app: Any, provider: Any, fast: bool = True, meter_provider: Any = None) -> tuple[str, Any]:
    """Instrument ``app`` unless it already is; say who did, and give the instrumentation's WSGI
    wrapper when we did. ``SIGOBS_EXCLUDED_PATHS`` are not the instrumentation's business:
    ``AppRuntime`` keeps its span off them (the instrumentation still reads
    ``OTEL_PYTHON_FLASK_EXCLUDED_URLS``). With ``fast`` (the start-up check held),
    its server span is made the short way (``fastspan.ServerSpanProvider``): the same span, a third
    of the cost. ``meter_provider``: flask-sigobs's metrics (outputs/metrics.py), when on: the
    instrumentation records the HTTP server metrics then, we don't (once per request).

    ``FlaskInstrumentor.instrument_app`` replaces ``app.wsgi_app`` by its wrapper, which an app
    reading its own middleware back (``current_app.wsgi_app.script_name``) cannot survive. So the
    wrapper is made around ``appcall.call_down`` (the app's ``wsgi_app`` of the moment, middleware
    added later included) and handed to ``AppRuntime``, which calls it; ``app.wsgi_app`` is put
    back as it was, and is what ``uninstrument_app`` puts back too."""
    if getattr(app, "_is_instrumented_by_opentelemetry", False):
        _say_if_newer_than_tested()
        return "app", None
    require_instrumentation()
    # One vocabulary: the stable HTTP semantic conventions on the span, like our events.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    from . import appcall

    app_ref = weakref.ref(app)  # the app holds its runtime, which holds this: no cycle back

    def flask_call(environ: dict[str, Any], start_response: Any) -> Any:
        return appcall.call_down(app_ref(), environ, start_response)

    own = app.__dict__.get("wsgi_app", _UNSET)
    app.wsgi_app = flask_call
    try:
        extra = {"meter_provider": meter_provider} if meter_provider is not None else {}
        FlaskInstrumentor.instrument_app(app, tracer_provider=ServerSpanProvider(provider) if fast else provider,
                                         **extra)
        wrapper = app.wsgi_app
    finally:
        if own is _UNSET:
            del app.wsgi_app  # Flask's own method again, as the class gives it
        else:
            app.wsgi_app = own
    app._original_wsgi_app = app.wsgi_app
    return "flask-sigobs", wrapper


def response_status(span: Any, status_code: int) -> None:
    """What the instrumentation's WSGI wrapper sets from the response, for a request that did not
    pass through it (a server given ``app.wsgi_app`` itself): the status code, and 5xx an error."""
    if not span.is_recording():
        return
    span.set_attribute("http.response.status_code", status_code)
    if status_code >= 500:
        span.set_attribute("error.type", str(status_code))
        span.set_status(Status(StatusCode.ERROR))


_NOT_OURS = object()


def hold_end(span: Any, state: Any) -> None:
    """Keep the span open through the span source's ``span.end()``; :func:`release_end` ends it.

    A span made by ``fastspan`` has a field for it; any other span gets an ``end`` of its own.
    (That replacement gives the span an instance dictionary, an object the garbage collector
    then finds in the export queue with every such span.)
    """
    hold = getattr(span, "_hold", _NOT_OURS)
    if hold is None:
        span._hold = state
    elif hold is _NOT_OURS and "end" not in vars(span):

        def end(end_time: int | None = None) -> None:
            """Held: the request's signals are not all said yet."""

        span.end = end


def release_end(span: Any, state: Any) -> None:
    """End the span held by :func:`hold_end`, now that the request has said everything."""
    hold = getattr(span, "_hold", _NOT_OURS)
    if hold is _NOT_OURS:
        if "end" not in vars(span):
            return
        del span.end
    elif hold is None:
        return
    else:
        span._hold = None
    try:
        scrub_span(span, state)
    except Exception as exc:
        report_once(("scrub_span", type(exc)), "flask-sigobs could not scrub a span: %r", exc)
    span.end(end_time=time.time_ns())


def scrub_span(span: Any, state: Any) -> None:
    """Before the span ends: what the span source wrote from the raw request, made ours.

    - The instrumentation records the exception with ``str(exc)`` as its ``exception`` event and
      status description: a secret of the request that the exception echoes is replaced (the
      secrets were noted by ``events.exception_attributes``; when that signal is off they are
      looked for here with the default sensitive keys).
    - ``client.address``: the instrumentation writes the socket peer; with trusted proxies
      (``SIGOBS_TRUSTED_PROXIES``) it is the forwarded client, as in the events. The socket
      peer stays as ``network.peer.address``.
    """
    if not span.is_recording():
        return
    environ = state.environ
    base = state.base or {}
    client = base.get("client.address")
    if client and client != environ.get("REMOTE_ADDR"):  # else the span says the same already
        attributes = getattr(span, "attributes", None) or {}
        if attributes.get("client.address") not in (None, client):
            span.set_attribute("network.peer.address", attributes["client.address"])
            span.set_attribute("client.address", client)
    status = getattr(span, "status", None)
    failed = status is not None and status.status_code is StatusCode.ERROR
    if not failed:  # the instrumentation records an exception and sets ERROR together
        return
    events = getattr(span, "_events", None)
    secrets = environ.get(SECRETS_KEY)
    if secrets is None:
        request = environ.get("werkzeug.request")
        secrets = Redactor().request_secrets(request) if request is not None else ()
    if failed and status.description:
        description = cut(scrub(status.description, secrets), MAX_ATTRIBUTE_LENGTH)
        if description != status.description:
            span.set_status(Status(StatusCode.ERROR, description))
    if events is not None:
        _scrub_events(span, events, secrets)


def _scrub_events(span: Any, events: Any, secrets: tuple[str, ...]) -> None:
    """The instrumentation's ``exception`` event: secrets replaced, text bounded even when the
    provider is the app's own and sets no attribute length limit."""
    from opentelemetry.sdk.trace import Event

    lock = getattr(span, "_lock", None)
    # The SDK's BoundedList, or a request span's plain list: the SDK offers no way to edit a recorded event.
    stored = getattr(events, "_dq", None) if isinstance(events, BoundedList) else events
    if lock is None or not isinstance(stored, MutableSequence):  # an SDK whose span is otherwise
        report_once("scrub_events", "flask-sigobs cannot edit the span's recorded events on this SDK "
                                    "(%s): an exception's text is left as the instrumentation recorded it", type(events))
        return
    with lock:
        for index, event in enumerate(list(stored)):
            attributes = event.attributes or {}
            changed = {}
            for key, value in attributes.items():
                if isinstance(value, str):
                    clean = cut(scrub(value, secrets), MAX_ATTRIBUTE_LENGTH)
                    if clean != value:
                        changed[key] = clean
            if changed:
                stored[index] = Event(event.name, {**attributes, **changed}, event.timestamp)


_QUERY_KEYS = ("url.query", "http.target", "http.url", "url.full")


def redact_span_query(span: Any, query: str, redacted: str) -> None:
    """The instrumentation copies the raw query string onto the span: replace it."""
    attributes = getattr(span, "attributes", None) or {}
    for key in _QUERY_KEYS:
        value = attributes.get(key)
        if isinstance(value, str) and query in value:
            span.set_attribute(key, value.replace(query, redacted))


_PATH_KEYS = ("url.path", "http.target", "http.url", "url.full")


def redact_span_path(span: Any, plan: PathPlan, environ: Any) -> None:
    """The instrumentation copies the path as sent onto the span (``PATH_INFO`` as ``url.path``,
    the request target or URL in the old conventions, and the path into the span's name when no
    route matched): the segments of the route's sensitive variables replaced, as in the events."""
    attributes = getattr(span, "attributes", None) or {}
    script = environ.get("SCRIPT_NAME") or ""
    for key in _PATH_KEYS:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            redacted = plan.redact(value) if key == "url.path" else redact_url_path(value, plan, script)
            if redacted != value:
                span.set_attribute(key, redacted)
    path = (environ.get("PATH_INFO") or "").strip()
    name = getattr(span, "name", None)
    if path and isinstance(name, str) and name.endswith(" " + path):  # "GET /reset/abc": no route
        span.update_name(name[:-len(path)] + plan.redact(path))
