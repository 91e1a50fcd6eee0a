"""``SigObs``: the Flask extension, and the per-app runtime that turns signals into events.

The path of one event: a receiver below (guarded, strongly referenced; the two every request runs
guard themselves) builds its attributes with ``events`` (cleaned by ``redaction``),
:meth:`AppRuntime.emit` ties it to its request's state and span, then the ``logsink`` writes the
JSON line and the ``tracesink`` adds the span event.
"""

from __future__ import annotations

import functools
import logging
import time
import weakref
from typing import Any, Callable

import flask
from blinker import ANY, Signal
from opentelemetry import trace
from werkzeug.exceptions import HTTPException

from . import appcall, auth, catalogue, config, events, otel_setup, selfcheck, structlog_setup
from .bridges import Source, flask_login, flask_security
from .audit.output import audit_output
from .errors import report_once
from .events import Event
from .headers import content_length, public_content_length, public_put_header, put_header
from .logsink import LineWriter, LogSink
from .paths import PLAN_KEY
from .outputs import build as build_outputs
from .redaction import Redactor
from .requeststate import EXCLUDED, FINISHED_ENVIRON, STATE_KEY, RequestState, client_address, current, hex_ids, request_id_from
from .spansource import SignalSpanSource
from .tracesink import TraceSink

MAX_PENDING = 64
_EVENT_NAMES = {name: f"flask.{name}" for name in catalogue.SIGNALS}


def guarded(receiver: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Whatever fails inside a receiver stays inside it: reported once, never raised."""

    @functools.wraps(receiver)
    def call(*args: Any, **kwargs: Any) -> None:
        try:
            receiver(*args, **kwargs)
        except Exception as exc:
            receiver_failed(name, exc)

    return call


def server_error(exception: HTTPException) -> bool:
    """An ``HTTPException`` that is a 5xx (or has no status at all: not an HTTP error we can read)."""
    code = exception.code
    if code is None and exception.response is not None:  # abort(Response(...))
        code = exception.response.status_code
    return not isinstance(code, int) or code >= 500


def receiver_failed(name: str, exc: Exception) -> None:
    report_once(("receiver", name, type(exc)), "flask-sigobs receiver for %s failed: %r", name, exc, exc_info=True)


class AppRuntime:
    """Everything flask-sigobs keeps for one app, resolved once at ``init_app``."""

    def __init__(self, app: flask.Flask, settings: config.Settings) -> None:
        self._app = weakref.ref(app)  # the app holds us (hooks); we must not hold it back
        self.settings = settings
        self._excluded_match = settings.excluded_re.match if settings.excluded_re is not None else None
        self._request_id_key = settings.request_id_environ_key
        instrumented = getattr(app, "_is_instrumented_by_opentelemetry", False)
        if settings.span_source == "otel" and not instrumented:
            otel_setup.require_instrumentation()  # before anything is set up: a ConfigError naming the extra
        self.redactor = Redactor(settings.redact_keys, settings.max_value_length)
        self.writer = LineWriter(settings.log_file, settings.log_flush_interval)
        logger, self.structlog_owner = structlog_setup.configure(
            app, self.writer, settings.log_format, settings.log_level,
            settings.capture_logging, settings.service_name)
        direct = self.writer if self.structlog_owner == "flask-sigobs" and settings.log_format == "json" else None
        ours = self.writer.flush if self.structlog_owner == "flask-sigobs" else None
        self.log_sink = LogSink(logger, settings.service_name, settings.log_level, direct, ours)
        # The short ways (fastspan, headers) only where the start-up check proves them on this SDK and werkzeug.
        fast = selfcheck.fast_path_allowed(settings.fast_path)
        self.fast_spans = fast and selfcheck.spans().fast
        self.fast_headers = fast and selfcheck.headers().fast
        self._put_header = put_header if self.fast_headers else public_put_header
        self._content_length = content_length if self.fast_headers else public_content_length
        # -- outputs: log records, metrics (outputs/): each event goes to every one of self.outputs
        self.outputs, self.log_records, self.metrics = build_outputs(app, settings)
        #: the HTTP server metrics, when we record them (we make the span; else the instrumentation does)
        self.http_metrics = None
        # --
        self.tracer_provider, self.otel_owner = otel_setup.tracer_provider(
            settings.service_name, settings.span_exporter)
        self.writer.flush_first_at_exit()  # lines before the provider's (possibly slow) shutdown
        self.span_source: SignalSpanSource | None = None
        self._otel_wsgi: Callable[..., Any] | None = None  # the instrumentation's WSGI wrapper, when we instrumented
        if settings.span_source == "signals" and not instrumented:
            self.span_source = SignalSpanSource(self.tracer_provider, self.redactor.longest, self.fast_spans)
            self.instrumented_by = "flask-sigobs signals"
            self.http_metrics = self.metrics
        else:  # an app instrumented already keeps its span, whatever the setting says
            self.instrumented_by, self._otel_wsgi = otel_setup.instrument(
                app, self.tracer_provider, self.fast_spans, self.metrics.facade if self.metrics is not None else None)
        # The instrumentation records the exception on its span itself; our own span source doesn't.
        self.trace_sink = TraceSink(record_exceptions=self.span_source is not None, redactor=self.redactor,
                                    fast=self.fast_spans, events=settings.span_events)
        self.audit = audit_output(app, settings, self)  # a Trail, or None when SIGOBS_AUDIT is off
        self._receivers: list[tuple[Any, Callable[..., Any]]] = []
        #: signal -> Source of SIGOBS_OBSERVE / SIGOBS_AUTH_SIGNALS: it says what such a signal
        #: becomes in this app, over a bridge or an observe() of the same signal
        self.configured: dict[Any, Source] = {source.signal: source for source in settings.configured_signals}
        self._connect()
        self._install_hooks()

    # -- wiring ---------------------------------------------------------------------------

    def _connect(self) -> None:
        enabled = self.settings.signals
        always = {"request_started", "request_finished"}  # they carry request id and state
        for name, spec in catalogue.SIGNALS.items():
            if name in always:  # every request runs these two: they guard themselves, a call less each
                receiver = functools.partial(getattr(AppRuntime, f"on_{name}"), self)
            elif name in enabled:
                receiver = guarded(getattr(self, f"on_{name}"), f"flask.{name}")
            else:
                continue
            spec.signal.connect(receiver, sender=self.app)  # weak: self._receivers keeps it
            self._receivers.append((spec.signal, receiver))
        self._enabled = {name: name in enabled for name in catalogue.SIGNALS}
        self._levels = dict(self.settings.signal_levels)

    @property
    def app(self) -> flask.Flask:
        return self._app()  # type: ignore[return-value]

    def _install_hooks(self) -> None:
        """Hook in without changing what the app sees: ``app.wsgi_app`` stays the app's own object
        (its middleware, before or after the attach, readable), requests reach :meth:`wsgi_app`
        through ``Flask.__call__`` (:mod:`appcall`)."""
        app = self.app
        self._down: Callable[..., Any] | None = appcall.DOWN  # None: app.wsgi_app, called inline
        self._excluded_down = appcall.call_down  # what serves an excluded path
        self._start_otel_span: Callable[[], Any] | None = None
        self._start_app_span: Callable[[], Any] | None = None  # the app's own instrumentation's
        if self.span_source is None:
            funcs = app.before_request_funcs.setdefault(None, [])
            otel_hook = getattr(app, "_before_request", None)
            hook = self.before_request
            if self._otel_wsgi is not None and otel_hook in funcs:
                # We instrumented: the instrumentation's span starts at request_started (see
                # on_request_started: before any url_value_preprocessor or before_request function
                # can end the request), unless the path is excluded, and an excluded path skips its
                # WSGI wrapper too. Passing our exclusions to the instrumentation instead costs every
                # request a full URL and three regex searches. Our hook takes its place in the list.
                self._start_otel_span = otel_hook
                funcs[funcs.index(otel_hook)] = hook
                app._before_request = hook  # what FlaskInstrumentor.uninstrument_app removes
                self._down = self._instrumented_down
            elif otel_hook in funcs:
                # Instrumented by the app itself or by opentelemetry-instrument: the span is the
                # instrumentation's, started by its before_request function, which a
                # url_value_preprocessor (or a before_request function before it) may never let run,
                # leaving the request without a span and its access line without a trace id. So our
                # request_started receiver starts it (the same function, still the app's), and in the
                # list a wrapper takes its place that starts it only where that did not (an excluded
                # path keeps the app's span); the wrapper is what uninstrument_app removes.
                started = _unless_started(otel_hook)
                funcs[funcs.index(otel_hook)] = started
                app._before_request = started
                self._start_app_span = otel_hook
                funcs.insert(funcs.index(started) + 1, hook)  # right after the span is started
            else:
                funcs.append(hook)
        appcall.observe(app, self.wsgi_app)

    def _instrumented_down(self, app: flask.Flask, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Down through the instrumentation's WSGI wrapper we hold (it calls ``appcall.call_down``),
        while the app is still instrumented: ``FlaskInstrumentor.uninstrument_app`` undoes it."""
        if app.__dict__.get("_is_instrumented_by_opentelemetry"):
            return self._otel_wsgi(environ, start_response)  # type: ignore[misc]
        self._down, self._start_otel_span = appcall.DOWN, None  # uninstrumented: as if we never had
        return appcall.call_down(app, environ, start_response)

    # -- the request state ----------------------------------------------------------------

    def wsgi_app(self, app: flask.Flask, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Outermost (``Flask.__call__``, outside the app's middleware): creates the request state,
        and ends the span once everything is said."""
        excluded = self._excluded_match  # self.excluded(path), without the call
        if excluded is not None and excluded(environ.get("PATH_INFO", "")) is not None:
            environ[STATE_KEY] = EXCLUDED
            return self._excluded_down(app, environ, start_response)
        state = self._new_state(environ)
        environ[STATE_KEY] = state
        if self.http_metrics is not None:  # metrics on, our span: one more active request
            state.active = self.http_metrics.started(environ)
        token = current.set(state)
        try:
            down = self._down  # None: Flask's own __call__, inlined (a frame less per request)
            result = app.wsgi_app(environ, start_response) if down is None else down(app, environ, start_response)
        except BaseException as error:
            self.finish(state, error)
            raise
        finally:
            current.reset(token)
            if state.token is not None:
                self.span_source.detach(state)  # type: ignore[union-attr]
        # Flask's teardown of the request context lets go of its request in the environ (Flask 3.0
        # and 3.1: ``environ["werkzeug.request"] = None``, against a reference cycle): every teardown
        # signal has fired. A body that keeps its context past our call (``stream_with_context`` on
        # Flask 3.0) sends them when the server closes it: the span ends then. Anything but a Flask
        # request there (none, or a test client's, when a middleware handed Flask a copy of the
        # environ) says nothing about the teardown: the span ends now. (A span source's own end
        # of the span, in its teardown function, is held until then: see ``_adopt_span``.)
        kept = environ.get("werkzeug.request")
        if state.span is None or not isinstance(kept, flask.Request):
            self.finish(state)
            return result
        return _FinishOnClose(result, self, state)  # a stream still holds the request context

    def excluded(self, path: str) -> bool:
        """A request for ``path`` is on one of ``SIGOBS_EXCLUDED_PATHS``: no events, no span."""
        match = self._excluded_match
        return match is not None and match(path) is not None

    def _new_state(self, environ: dict[str, Any]) -> RequestState:
        request_id = request_id_from(environ.get(self._request_id_key))
        return RequestState(environ, request_id, self.settings.service_name, self.writer, self.redactor)

    def state(self) -> Any:
        """This request's state, ``EXCLUDED``, or ``None`` outside a request. The receivers every
        request runs read ``current.get() or self.state()``: a state (or ``EXCLUDED``) is true."""
        state = current.get()
        if state is None and flask.has_request_context():
            environ = flask.request.environ
            state = environ.get(STATE_KEY)
            if state is None:  # not through Flask.__call__ (a test request context, a server given app.wsgi_app)
                if self.excluded(environ.get("PATH_INFO", "")):
                    state = EXCLUDED
                else:
                    state = self._new_state(environ)
                    state.unhooked = True  # request_finished finishes it: nothing else would
                environ[STATE_KEY] = state
        return state

    def before_request(self) -> None:
        """Runs right after the span source's own ``before_request``: the span now exists. (When we
        instrumented, it takes the instrumentation's place and the span exists already.)"""
        try:
            state = current.get() or self.state()  # the set state without a call
            if state is EXCLUDED or state is None:
                return
            if state.span is None:
                span = state.environ.get(otel_setup.OTEL_SPAN_KEY)
                if span is not None:
                    self._adopt_span(state, span)
            if state.pending:
                self._flush(state)
        except Exception as exc:
            report_once(("before_request", type(exc)), "flask-sigobs before_request failed: %r", exc)

    def _adopt_span(self, state: RequestState, span: Any) -> None:
        state.adopt(span)
        if span.is_recording():
            if STATE_KEY in state.environ and current.get() is state:
                otel_setup.hold_end(span, state)  # our wsgi_app is there to release it
            query = state.environ.get("QUERY_STRING")
            if query and state.base and state.base.get("url.query") != query:
                otel_setup.redact_span_query(span, query, state.base["url.query"])
            plan = state.environ.get(PLAN_KEY)  # set only when the path has a secret in it
            if plan is not None:
                otel_setup.redact_span_path(span, plan, state.environ)

    def finish(self, state: RequestState, error: BaseException | None = None) -> None:
        try:
            if not state.finished and state.base is not None:
                self._finished_without_response(state)
            state.finished = True
            if state.pending:
                self._flush(state)
            if self.span_source is not None:
                self.span_source.end(state, error)
            elif state.span is not None:
                otel_setup.release_end(state.span, state)
            if self.http_metrics is not None:
                self._measure(state, error)
        except Exception as exc:
            report_once(("finish", type(exc)), "flask-sigobs could not finish a request: %r", exc)
        finally:
            # The environ holds the state and the state its environ: without this, every request
            # would leave a reference cycle (the environ and all it holds) for the garbage collector.
            state.environ = FINISHED_ENVIRON

    def _measure(self, state: RequestState, error: BaseException | None) -> None:
        """The request's duration and end, in the HTTP server metrics (when we record them)."""
        try:
            active = getattr(state, "active", None)  # set by wsgi_app (only when metrics are on)
            if active is None:
                return
            status = getattr(state, "status", None)
            if status is None and error is not None:
                status = 500
            route = state.base.get("http.route") if state.base else None
            self.http_metrics.finished(active, (time.perf_counter_ns() - state.started) / 1e9,  # type: ignore[union-attr]
                                       route, status, error)
        except Exception as exc:
            report_once(("metrics", type(exc)), "flask-sigobs could not measure a request: %r", exc)

    # -- one event, every output ----------------------------------------------------------

    def emit(self, name: str, level: int, attributes: dict[str, Any], state: Any,
             exception: BaseException | None = None, span_attributes: dict[str, Any] | None = None,
             span_user: str | None = None) -> None:
        event = Event(name, level, attributes, exception, span_attributes, span_user)
        if state is None or state is EXCLUDED:
            self._deliver(event, None)
            return
        attributes.setdefault("request.id", state.request_id)
        if state.span is None and not state.finished:
            span = state.environ.get(otel_setup.OTEL_SPAN_KEY)
            if span is None:  # before the span source's before_request: wait for the span
                if len(state.pending) < MAX_PENDING:
                    state.pending = [*state.pending, event]
                return
            self._adopt_span(state, span)
        if state.pending:
            self._flush(state)
        self._deliver(event, state)

    def _flush(self, state: RequestState) -> None:
        pending, state.pending = state.pending, ()
        for event in pending:
            self._deliver(event, state)

    def _deliver(self, event: Event, state: RequestState | None) -> None:
        """Every event's one way to the outputs: call it as ``self._deliver``. While a test capture
        is open, ``flask_sigobs.testing`` replaces it on the class (and puts it back after), so
        capturing costs a request nothing otherwise."""
        if state is not None:
            span, trace_id, span_id = state.span, state.trace_id, state.span_id
        else:
            span = trace.get_current_span()
            trace_id, span_id = hex_ids(span)
        if event.level >= self.log_sink.level:  # most request events are span events only: no call
            try:
                self.log_sink.emit(event, trace_id, span_id)
            except Exception as exc:
                report_once(("log", type(exc)), "flask-sigobs could not log %s: %r", event.name, exc)
        if span is not None:
            try:
                self.trace_sink.emit(span, event)
            except Exception as exc:
                report_once(("span", type(exc)), "flask-sigobs could not add %s to the span: %r",
                            event.name, exc)
        for output in self.outputs:  # log records, metrics (outputs/): an empty tuple unless on
            try:
                output.emit(event, span, trace_id, span_id)
            except Exception as exc:
                report_once((output.name, type(exc)), "flask-sigobs could not give %s to its %s output: %r",
                            event.name, output.name, exc)

    # -- Flask's signals --------------------------------------------------------------------

    def _request_event(self, name: str, attributes: dict[str, Any], state: Any,
                       exception: BaseException | None = None) -> None:
        if self._enabled[name] and state is not None and state is not EXCLUDED:
            self.emit(_EVENT_NAMES[name], self._levels[name], attributes, state, exception)

    def _context_event(self, name: str, attributes: dict[str, Any]) -> None:
        state = self.state()
        if state is not EXCLUDED:
            self.emit(_EVENT_NAMES[name], self._levels[name], attributes, state)

    def on_appcontext_pushed(self, sender: Any, **_: Any) -> None:
        self._context_event("appcontext_pushed", {})

    def on_request_started(self, sender: Any, **_: Any) -> None:
        """Guards itself (connected without ``guarded``): every request runs it."""
        try:
            state = current.get() or self.state()  # the set state without a call
            if state is None or state is EXCLUDED:
                return
            request = flask.request._get_current_object()  # type: ignore[attr-defined]
            if request.environ is not state.environ:
                state.environ = request.environ  # a middleware handed Flask a copy: Flask's is the one
            state.base = events.request_attributes(request, state, self.redactor, self.settings.trusted_proxies)
            if self.span_source is not None and state.span is None:
                self.span_source.start(state, request, state.started_ns)
            elif state.span is None:
                # Its span starts here, not in its before_request function, which a
                # url_value_preprocessor (or a before_request function before it) may never let run:
                # the instrumentation's when we instrumented, else the app's own while it is there.
                start = self._start_otel_span
                if start is None and sender.__dict__.get("_is_instrumented_by_opentelemetry"):
                    start = self._start_app_span
                if start is not None:
                    start()
                    span = state.environ.get(otel_setup.OTEL_SPAN_KEY)
                    if span is not None:
                        self._adopt_span(state, span)
            if self._enabled["request_started"]:  # the event only reads base: no copy
                self.emit("flask.request_started", self._levels["request_started"], state.base, state,
                          span_attributes={"request.id": state.request_id})
        except Exception as exc:
            receiver_failed("flask.request_started", exc)

    def on_before_render_template(self, sender: Any, template: Any, **_: Any) -> None:
        self._context_event("before_render_template", {"template.name": self._template_name(template)})

    def on_template_rendered(self, sender: Any, template: Any, **_: Any) -> None:
        self._context_event("template_rendered", {"template.name": self._template_name(template)})

    def _template_name(self, template: Any) -> str:
        return self.redactor.text(str(template.name or "<string>"))

    def on_message_flashed(self, sender: Any, category: Any = "message", **_: Any) -> None:
        self._context_event("message_flashed", {"flask.flash.category": self.redactor.clean(category)})

    def on_got_request_exception(self, sender: Any, exception: BaseException, **_: Any) -> None:
        if isinstance(exception, HTTPException) and not server_error(exception):
            # An HTTP error raised on purpose (``abort(401)``): Flask never sends this signal for
            # one, but Flask-RESTful and flask-restx send it for every HTTP error they handle. Its
            # status is on the access line; it is not an exception event, nor an ERROR span.
            return
        state = self.state()
        attributes = {}
        if state is not None and state is not EXCLUDED and state.base:
            for key in ("http.request.method", "http.route", "url.path"):
                if key in state.base:
                    attributes[key] = state.base[key]
        attributes.update(events.exception_attributes(exception, self.redactor))
        self._request_event("got_request_exception", attributes, state, exception)

    def on_request_finished(self, sender: Any, response: Any, **_: Any) -> None:
        """Guards itself, like ``on_request_started``."""
        try:
            state = current.get() or self.state()  # the set state without a call
            if state is None or state is EXCLUDED:
                return
            state.finished = True
            self._put_header(response.headers, self.settings.request_id_header, state.request_id)
            if state.user_id is None and getattr(sender, "login_manager", None) is not None:
                user = flask.g.get("_login_user")  # Flask-Login's current user, if it was loaded
                if user is not None and getattr(user, "is_authenticated", False):
                    state.user_id = events.user_id(user, self.redactor)
            if state.base is None:
                state.base = events.request_attributes(flask.request, state, self.redactor,
                                                       self.settings.trusted_proxies)
            status = response.status_code  # a property: read once
            if self.http_metrics is not None:
                state.status = status
            attributes, outcome = events.finished_attributes(state, status, self._content_length(response))
            if self.span_source is not None:
                self.span_source.response(state, status)
            level = self._levels["request_finished"]
            if status >= 500:
                level = max(level, logging.ERROR)
            if self._enabled["request_finished"]:  # the span names who the access line names
                self.emit("flask.request_finished", level, attributes, state, span_attributes=outcome,
                          span_user=state.user_id)
            if state.unhooked:  # no WSGI call of ours to end the span: end it now, and leave its context
                if state.token is not None:
                    self.span_source.detach(state)  # type: ignore[union-attr]
                elif self._otel_wsgi is not None and state.span is not None:  # its WSGI wrapper was passed by
                    otel_setup.response_status(state.span, response.status_code)
                self.finish(state)
        except Exception as exc:
            receiver_failed("flask.request_finished", exc)

    def _finished_without_response(self, state: RequestState) -> None:
        """The request started but Flask never sent ``request_finished``: an ``after_request``
        function or the session save raised (Flask then sends ``got_request_exception`` and answers
        500, but sends ``request_finished`` only if finishing its error response succeeds), or an
        exception left Flask (``PROPAGATE_EXCEPTIONS``: the server answers 500). The access line
        still says so, once: status 500, at ``error``, and the span gets the status. (The exception
        itself is on the span already: its ``got_request_exception`` event, the instrumentation's
        teardown, or ``span_source.end``.)"""
        try:  # what on_request_finished does (written out there: a call less per request), for a 500
            attributes, outcome = events.finished_attributes(state, 500, None)
            if self.span_source is not None:
                self.span_source.response(state, 500)
            if self._enabled["request_finished"]:
                level = max(self._levels["request_finished"], logging.ERROR)
                self.emit("flask.request_finished", level, attributes, state, span_attributes=outcome,
                          span_user=state.user_id)
        except Exception as exc:
            receiver_failed("flask.request_finished", exc)

    def on_request_tearing_down(self, sender: Any, exc: BaseException | None = None, **_: Any) -> None:
        attributes = {"exception.type": events.exception_type(exc)} if exc is not None else {}
        self._request_event("request_tearing_down", attributes, self.state())

    def on_appcontext_tearing_down(self, sender: Any, exc: BaseException | None = None, **_: Any) -> None:
        attributes = {"exception.type": events.exception_type(exc)} if exc is not None else {}
        self._context_event("appcontext_tearing_down", attributes)

    def on_appcontext_popped(self, sender: Any, **_: Any) -> None:
        self._context_event("appcontext_popped", {})

    # -- auth and custom signals --------------------------------------------------------------

    def signal_event(self, source: Source, sender: Any, data: dict[str, Any]) -> None:
        state = self.state()
        if state is EXCLUDED:  # every event of an excluded request is left out, custom ones too
            return
        is_auth = source.is_auth
        attributes: dict[str, Any] = {}
        span_user = None
        user = data.pop("user", None)
        if user is None and is_auth and callable(getattr(sender, "get_id", None)):
            user = sender  # ``user_logged_in.send(user)``: the sender is the user
        if user is not None:
            uid = events.user_id(user, self.redactor)
            if uid is not None:
                attributes["enduser.id"] = uid
                if source.identifies:  # the request's user, on its access line and span
                    span_user = uid
                    if state is not None:
                        state.user_id = uid
        if source.keep is not None:
            data = {key: value for key, value in data.items() if key in source.keep}
        if state is not None and state.base:
            if is_auth:
                for key in ("client.address", "user_agent.original"):
                    if key in state.base:
                        attributes[key] = state.base[key]
        elif is_auth and flask.has_request_context():
            attributes["client.address"] = client_address(flask.request.environ, self.settings.trusted_proxies)
        if not is_auth and sender is not self.app and sender is not None:
            attributes["signal.sender"] = self.redactor.clean(sender)
        attributes.update(self.redactor.mapping(data))
        if is_auth and self.audit is not None:
            if "reason" in attributes:  # a name that matches no account: hashed in the line and span too
                attributes = self.audit.protect(source.event, attributes)
            self.emit(source.event, source.level, attributes, state, span_user=span_user)
            self.audit.record(source.event, attributes, state)
            return
        self.emit(source.event, source.level, attributes, state, span_user=span_user)


def _unless_started(before_request: Callable[[], Any]) -> Callable[[], Any]:
    """The instrumentation's ``before_request`` function, run only if its span has not started.
    (Wrapped: to a reader of ``before_request_funcs``, ``sigobs doctor`` say, it is still the
    instrumentation's.)"""

    @functools.wraps(before_request)
    def start_unless_started() -> Any:
        if otel_setup.OTEL_SPAN_KEY not in flask.request.environ:
            return before_request()
        return None

    return start_unless_started


class _FinishOnClose:
    """A streamed body: the request (and its span) ends when the server closes the body."""

    def __init__(self, iterable: Any, runtime: AppRuntime, state: RequestState) -> None:
        self._iterable = iterable
        self._runtime = runtime
        self._state = state

    def __iter__(self) -> Any:
        return iter(self._iterable)

    def close(self) -> None:
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        finally:
            self._runtime.finish(self._state)


class SigObs:
    """Observe a Flask app's signals as JSON log lines and OpenTelemetry span events.

    ``SigObs(app)``, or ``SigObs()`` then ``init_app(app)`` for each app of an app factory. One
    instance may serve several apps; each keeps its own settings, service name and outputs.
    """

    def __init__(self, app: flask.Flask | None = None) -> None:
        self._runtimes: weakref.WeakKeyDictionary[flask.Flask, AppRuntime] = weakref.WeakKeyDictionary()
        self._observed: dict[Any, tuple[str | None, int, Any, Callable[..., Any]]] = {}
        self._configured: dict[Any, Callable[..., Any]] = {}  # SIGOBS_OBSERVE / SIGOBS_AUTH_SIGNALS
        self._connect_auth()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Attach to ``app``: read its settings, set up OpenTelemetry and structlog, connect."""
        existing = app.extensions.get("sigobs")
        if existing is not None:
            if existing is self:
                return
            if getattr(existing, "_sigobs_autoattach", False):
                # Attached by the launcher on the first request, before the app's own call: the
                # app stays observed once, by the launcher's instance (its settings are the same
                # app.config and environment).
                report_once(("late init_app", app.name), "flask-sigobs: %s was attached on its first "
                            "request already; SigObs(app) after that is ignored", app.name)
                return
            raise RuntimeError("flask-sigobs is already attached to this app by another SigObs")
        settings = config.load(app)
        self._runtimes[app] = AppRuntime(app, settings)
        app.extensions["sigobs"] = self
        for source in settings.configured_signals:
            self._connect_configured(source.signal)

    def runtime(self, app: flask.Flask | None = None) -> AppRuntime:
        """The per-app runtime (settings, sinks, tracer provider) of ``app`` or the current app."""
        app = app or flask.current_app._get_current_object()
        return self._runtimes[app]

    def flush(self, app: flask.Flask | None = None, timeout_millis: int = 5000) -> None:
        """Write the log lines waiting to be written and export the spans waiting to be sent, now.

        Lines are written together every ``SIGOBS_LOG_FLUSH_INTERVAL`` (and at exit, before a fork,
        and at once for a warning, an error or an authentication event): call this where a process must not wait for that, at the end of
        a script or a serverless invocation, say. Without ``app`` and outside an app context: every
        app this ``SigObs`` serves.
        """
        if app is None and not flask.has_app_context():
            runtimes = list(self._runtimes.values())
        else:
            runtimes = [self.runtime(app)]
        for runtime in runtimes:
            if runtime.audit is not None:
                runtime.audit.flush(adopt=True)
            runtime.writer.flush()
            runtime.tracer_provider.force_flush(timeout_millis)
            for output in runtime.outputs:
                output.flush(timeout_millis)

    def observe(self, signal: Signal, *, event: str | None = None, level: str = "info",
                sender: Any = ANY) -> None:
        """Make any blinker signal produce a log line and a span event named ``event``."""
        number = config.LEVELS.get(str(level).lower())
        if number is None:
            raise ValueError(f"level must be one of {', '.join(config.LEVELS)}, not {level!r}")
        name = event or getattr(signal, "name", None)
        if not name:
            raise ValueError("an anonymous signal needs event='name'")
        if signal in self._observed:
            signal.disconnect(self._observed[signal][3])
        source = Source(signal, name, number, is_auth=False)
        receiver = guarded(functools.partial(self._on_signal, source), name)
        signal.connect(receiver, sender=sender)  # weak: self._observed keeps it as long as we live
        self._observed[signal] = (event, number, sender, receiver)

    def _connect_auth(self) -> None:
        sources = [Source(signal, f"auth.{signal.name}", level, signal in auth.IDENTIFIES)
                   for signal, level in auth.LEVELS.items()]
        sources += flask_login.signals() + flask_security.signals()
        self._auth_receivers = []
        for source in sources:
            receiver = guarded(functools.partial(self._on_signal, source), source.event)
            source.signal.connect(receiver)  # weak: held below as long as this SigObs lives
            self._auth_receivers.append((source.signal, receiver))

    def _connect_configured(self, signal: Any) -> None:
        """One receiver per signal for all our apps: each app's settings say what it becomes there."""
        if signal not in self._configured:
            name = f"configured signal {getattr(signal, 'name', None) or signal!r}"
            receiver = guarded(functools.partial(self._on_configured, signal), name)
            signal.connect(receiver)  # weak: self._configured keeps it as long as we live
            self._configured[signal] = receiver

    def _on_signal(self, source: Source, sender: Any, /, **data: Any) -> None:
        runtime = self._runtime_for(sender)
        if runtime is not None and source.signal not in runtime.configured:  # configured: it says
            runtime.signal_event(source, sender, data)

    def _on_configured(self, signal: Any, sender: Any, /, **data: Any) -> None:
        runtime = self._runtime_for(sender)
        source = runtime.configured.get(signal) if runtime is not None else None
        if source is not None:
            runtime.signal_event(source, sender, data)  # type: ignore[union-attr]

    def _runtime_for(self, sender: Any) -> AppRuntime | None:
        if flask.has_app_context():
            return self._runtimes.get(flask.current_app._get_current_object())
        if isinstance(sender, flask.Flask):
            return self._runtimes.get(sender)
        if len(self._runtimes) == 1:
            return next(iter(self._runtimes.values()))
        return None
