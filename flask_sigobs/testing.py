"""Test what your app signals: the events flask-sigobs produces inside a test, and its spans.

::

    from flask_sigobs.testing import captured_events

    with captured_events(app) as events:
        app.test_client().post("/login", data={"username": "mallory", "password": "guess"})
    events.assert_emitted("auth.login_failed", {"enduser.id": "mallory"}, reason="bad password")

The pytest plugin (:mod:`flask_sigobs.pytest_plugin`) offers the same as the fixtures
``sigobs_events`` and ``sigobs_spans``. docs/testing.md is the user's guide; the decisions in short:

- **What an event's** ``attributes`` **are**: the fields of its JSON line less ``timestamp``,
  ``level`` and ``event`` (those are :attr:`CapturedEvent.time_ns`, ``level`` and ``name``), so
  ``service.name``, ``trace_id`` and ``span_id`` are there as in the line. They are what the log
  sink writes, taken through the same JSON encoder and back: redacted, bounded, the same keys and
  the same values a reader of the line gets (a tuple is a list there, too).
  :meth:`CapturedEvent.line` rebuilds the whole line. (When the app configured structlog itself,
  its own processors may add fields to the written line; those are the app's, not captured.)
- **Events below** ``SIGOBS_LOG_LEVEL`` are captured: they are events (span events) all the same,
  with :attr:`CapturedEvent.logged` false.
- **Which events**: those of one app (``captured_events(app)``), or of every app
  (``captured_events()``, which also sees apps created inside it: an app factory called in the
  test), delivered while the capture is open. An event belongs to the captures that were open
  where its request began (or, outside a request, where its context was made): a view's thread
  started with ``contextvars.copy_context()`` or ``flask.copy_current_request_context`` and still
  running after its test is over does not leak into the next test's capture. An event from a
  context no capture ever saw (a server thread, a plain ``threading.Thread`` started outside a
  request) goes to every open capture of its app.
- **Nested captures** both see what happens inside the inner one.

How it costs a request nothing when no capture is open: every event goes through
``AppRuntime._deliver`` on its way to the outputs. While at least one capture is open, that method
is replaced, on the class, by :func:`_capturing_deliver`, which calls it and then records the
event; the last capture to close puts the original back. Outside a capture no flag is checked and
no call is added.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence, overload

import flask
import orjson
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind
from werkzeug.local import LocalProxy

from .catalogue import LEVEL_NAMES
from .errors import report_once
from .extension import AppRuntime
from .logsink import dumps, iso_utc
from .requeststate import hex_ids

__all__ = ["CapturedEvent", "CapturedEvents", "CapturedSpans", "captured_events", "captured_spans"]

#: The line's correlation fields: in every event's attributes, left out of failure listings.
_CORRELATION = ("service.name", "trace_id", "span_id", "request.id")
_MISSING: Any = object()
_SHOWN_VALUE = 60  # characters of one value in a failure message
_SHOWN_EVENTS = 40  # events listed in a failure message


@dataclass(frozen=True, repr=False, eq=False)
class CapturedEvent:
    """One event as flask-sigobs delivered it to its outputs."""

    name: str
    #: The level's word, as in the log line: ``debug``, ``info``, ``warning``, ``error``, ``critical``.
    level: str
    #: The JSON line's fields but ``timestamp``, ``level`` and ``event``: see the module's notes.
    attributes: dict[str, Any]
    trace_id: str | None
    span_id: str | None
    #: The exception of a ``flask.got_request_exception`` event (scrubbed of the request's secrets).
    exception: BaseException | None = None
    time_ns: int = 0
    #: Whether it was written as a log line: false for an event below ``SIGOBS_LOG_LEVEL``, which is
    #: a span event only.
    logged: bool = True

    @property
    def timestamp(self) -> str:
        """The line's ``timestamp``."""
        return iso_utc(self.time_ns)

    def line(self) -> dict[str, Any]:
        """The JSON line of this event (``logged`` or not), as a dict, in the line's own key order."""
        return {"timestamp": self.timestamp, "level": self.level, "event": self.name, **self.attributes}

    def _matches(self, name: str | None, wanted: Mapping[str, Any]) -> bool:
        if name is not None and self.name != name:
            return False
        attributes = self.attributes
        return all(attributes.get(key, _MISSING) == value for key, value in wanted.items())

    def __repr__(self) -> str:
        return f"<CapturedEvent {self.name} [{self.level}] {_shown_attributes(self.attributes)}>"


class CapturedEvents(Sequence[CapturedEvent]):
    """The events of one capture, in the order they were delivered; a sequence (index, iterate,
    ``len``), filled while the capture is open, and kept as it was once it is closed.

    Attributes to match are given as keywords (``reason="bad password"``) or, for the dotted
    names of the semantic conventions, as a mapping (``{"enduser.id": "mallory"}``), or both. A
    value is compared with ``==``: ``unittest.mock.ANY`` matches anything present.
    """

    def __init__(self, scope: str) -> None:
        self._items: list[CapturedEvent] = []
        self.scope = scope  # "app 'shop'" or "every app": what the messages say was captured
        self.other_apps = 0  # events of other apps delivered while open (an app-scoped capture)
        self.failures: list[str] = []  # events flask-sigobs could not capture (never silently)

    # -- the sequence ---------------------------------------------------------------------------

    @overload
    def __getitem__(self, index: int) -> CapturedEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[CapturedEvent]: ...

    def __getitem__(self, index: Any) -> Any:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[CapturedEvent]:
        return iter(list(self._items))  # a view's thread may append meanwhile

    def __repr__(self) -> str:
        return f"<CapturedEvents of {self.scope}: {', '.join(self.names()) or 'none'}>"

    def clear(self) -> None:
        """Forget what was captured so far (the capture goes on)."""
        self._items.clear()

    # -- looking ----------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The names of the captured events, in order."""
        return [event.name for event in list(self._items)]

    def find(self, name: str, attributes: Mapping[str, Any] | None = None, /, **attrs: Any) -> CapturedEvent | None:
        """The first event named ``name`` with these attributes, or ``None``."""
        wanted = _wanted(attributes, attrs)
        return next((event for event in list(self._items) if event._matches(name, wanted)), None)

    def all(self, name: str | None = None, attributes: Mapping[str, Any] | None = None, /,
            **attrs: Any) -> list[CapturedEvent]:
        """Every event named ``name`` (any name when ``None``) with these attributes."""
        wanted = _wanted(attributes, attrs)
        return [event for event in list(self._items) if event._matches(name, wanted)]

    # -- asserting --------------------------------------------------------------------------------

    def assert_emitted(self, name: str, attributes: Mapping[str, Any] | None = None, /,
                       **attrs: Any) -> CapturedEvent:
        """The first event named ``name`` with these attributes; an ``AssertionError`` saying what
        was captured instead when there is none."""
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        wanted = _wanted(attributes, attrs)
        event = self.find(name, wanted)
        if event is None:
            raise AssertionError(self._explain(f"no {name} event{_with(wanted)} was captured", name, wanted))
        return event

    def assert_not_emitted(self, name: str, attributes: Mapping[str, Any] | None = None, /, **attrs: Any) -> None:
        """No event named ``name`` with these attributes was captured."""
        __tracebackhide__ = True
        wanted = _wanted(attributes, attrs)
        found = self.all(name, wanted)
        if found:
            listing = "\n".join(f"  {event!r}" for event in found)
            raise AssertionError(f"{len(found)} {name} event(s){_with(wanted)} captured, none expected:\n{listing}")

    def assert_absent(self, text: str) -> None:
        """``text`` (a password, a token sent in the test) is in no captured event: not in a name,
        an attribute's key or value, nested values included."""
        __tracebackhide__ = True
        if not text:
            raise ValueError("assert_absent needs the text to look for")
        leaks = [(event, path) for event in list(self._items)
                 for path in _paths_containing({"event": event.name, **event.attributes}, text)
                 if path != "event (the key)"]
        if leaks:
            listing = "\n".join(f"  {event.name}: {path}" for event, path in leaks[:_SHOWN_EVENTS])
            raise AssertionError(f"{text!r} was captured in {len(leaks)} place(s):\n{listing}")

    def _explain(self, headline: str, name: str, wanted: Mapping[str, Any]) -> str:
        """The failure message: what was asked, what came closest, and everything captured."""
        items = list(self._items)
        lines = [f"{headline} ({self.scope})."]
        same_name = [event for event in items if event.name == name]
        if same_name and wanted:
            lines.append(f"{len(same_name)} {name} event(s) captured, with other attributes:")
            for event in same_name[:_SHOWN_EVENTS]:
                lines.append(f"  #{items.index(event)}: " + "; ".join(_differences(event.attributes, wanted)))
        if items:
            lines.append(f"captured {len(items)} event(s):")
            for number, event in enumerate(items[:_SHOWN_EVENTS]):
                lines.append(f"  #{number} {event.name} [{event.level}] {_shown_attributes(event.attributes)}")
            if len(items) > _SHOWN_EVENTS:
                lines.append(f"  ... and {len(items) - _SHOWN_EVENTS} more")
        else:
            lines.append("no event at all was captured.")
            if self.other_apps:
                lines.append(f"({self.other_apps} event(s) of other apps were delivered meanwhile: "
                             f"is it the app the test sends its requests to?)")
            else:
                lines.append("flask-sigobs delivered no event while capturing: is SigObs attached to the app under "
                             "test (SigObs(app), or sigobs.init_app(app) in its factory), and did the test make a "
                             "request or send a signal inside the capture?")
        lines.extend(f"note: {failure}" for failure in self.failures)
        return "\n".join(lines)


def _wanted(attributes: Mapping[str, Any] | None, attrs: Mapping[str, Any]) -> dict[str, Any]:
    if attributes is not None and not isinstance(attributes, Mapping):
        raise TypeError(f"attributes to match must be a mapping, not {type(attributes).__name__}")
    return {**(attributes or {}), **attrs}


def _with(wanted: Mapping[str, Any]) -> str:
    return " with " + ", ".join(f"{key}={value!r}" for key, value in wanted.items()) if wanted else ""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_VALUE else text[:_SHOWN_VALUE - 3] + "..."


def _shown_attributes(attributes: Mapping[str, Any]) -> str:
    return " ".join(f"{key}={_shown(value)}" for key, value in attributes.items() if key not in _CORRELATION)


def _differences(attributes: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    out = []
    for key, value in wanted.items():
        actual = attributes.get(key, _MISSING)
        if actual is _MISSING:
            out.append(f"no {key}")
        elif actual != value:
            out.append(f"{key}={_shown(actual)}, not {_shown(value)}")
    return out


def _paths_containing(value: Any, text: str, path: str = "") -> Iterator[str]:
    if isinstance(value, str):
        if text in value:
            yield path or "(value)"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if text in str(key):
                yield f"{where} (the key)"
            yield from _paths_containing(item, text, where)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _paths_containing(item, text, f"{path}[{index}]")
    elif value is not None and not isinstance(value, (bool, int, float)) and text in str(value):
        yield path


class CapturedSpans(Sequence[ReadableSpan]):
    """The spans that ended while the capture was open: the request's server span (its span events
    are the events), and the app's own spans on the same tracer provider.

    Spans are taken at ``on_end`` by a span processor added to the tracer provider of each app that
    delivers an event while a span capture is open (or of the app given): flask-sigobs' own
    provider, or the app's when the app set one up. The SDK cannot remove a span processor; this
    one stays (in the test process only) and forwards nothing when no span capture is open. The
    app's own exporters are not touched: its spans still go where they went.

    (Log records: when the runtime gains its OpenTelemetry logger provider, a ``captured_log_records``
    beside this class taps it the same way, in :func:`_tap`, with the SDK's in-memory log exporter.)
    """

    def __init__(self, scope: str) -> None:
        self._items: list[ReadableSpan] = []
        self.scope = scope
        self.failures: list[str] = []

    @overload
    def __getitem__(self, index: int) -> ReadableSpan: ...

    @overload
    def __getitem__(self, index: slice) -> list[ReadableSpan]: ...

    def __getitem__(self, index: Any) -> Any:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[ReadableSpan]:
        return iter(list(self._items))

    def __repr__(self) -> str:
        return f"<CapturedSpans of {self.scope}: {', '.join(self.names()) or 'none'}>"

    def clear(self) -> None:
        self._items.clear()

    def names(self) -> list[str]:
        return [span.name for span in list(self._items)]

    def find(self, name: str) -> ReadableSpan | None:
        """The first span named ``name`` (a server span is named ``"GET /items/<int:id>"``), or None."""
        return next((span for span in list(self._items) if span.name == name), None)

    def all(self, name: str | None = None) -> list[ReadableSpan]:
        return [span for span in list(self._items) if name is None or span.name == name]

    def server(self) -> list[ReadableSpan]:
        """The request spans (kind SERVER), one per observed request."""
        return [span for span in list(self._items) if span.kind == SpanKind.SERVER]

    def event_names(self, span: ReadableSpan) -> list[str]:
        """The names of ``span``'s span events: flask-sigobs' events, and the SDK's ``exception``."""
        return [event.name for event in span.events]


# -- the registry of open captures ------------------------------------------------------------------

@dataclass(eq=False)
class _Scope:
    """One open capture: of events, or of spans; of one app's runtime, or of every app."""

    runtime: AppRuntime | None
    events: CapturedEvents | None = None
    spans: CapturedSpans | None = None


_lock = threading.Lock()
#: The open captures (a tuple replaced, never changed: the delivery reads it without the lock).
_scopes: tuple[_Scope, ...] = ()
_span_scopes: tuple[_Scope, ...] = ()
#: The captures open in this context, innermost last: what an event made here belongs to.
_marks: ContextVar[tuple[_Scope, ...]] = ContextVar("flask_sigobs_testing_captures", default=())
#: The marks of each request, taken at its first event delivered while a capture is open: a view's
#: thread that carries the request (``copy_current_request_context``) but not the context belongs
#: to the request's captures all the same.
_request_marks: weakref.WeakKeyDictionary[Any, tuple[_Scope, ...]] = weakref.WeakKeyDictionary()
_original_deliver: Callable[..., None] | None = None
#: The span processor added to each tracer provider (see :class:`CapturedSpans`).
_taps: weakref.WeakKeyDictionary[Any, "_SpanTap"] = weakref.WeakKeyDictionary()


def _capturing_deliver(runtime: AppRuntime, event: Any, state: Any, *more: Any, **named: Any) -> None:
    """``AppRuntime._deliver`` while a capture is open: the outputs first, as always, then the captures."""
    _original_deliver(runtime, event, state, *more, **named)  # type: ignore[misc]
    try:
        _record(runtime, event, state)
    except Exception as exc:  # the request must not pay for a failing capture; the test hears of it
        report_once(("testing", type(exc)), "flask-sigobs could not capture %s: %r", event.name, exc)
        for scope in _scopes:
            if scope.events is not None:
                scope.events.failures.append(f"{event.name} could not be captured: {exc!r}")


def _record(runtime: AppRuntime, event: Any, state: Any) -> None:
    scopes = _scopes
    if _span_scopes and runtime.tracer_provider not in _taps:
        _tap(runtime)  # before the request's span ends: its first event comes before
    marks = None if state is None else _request_marks.get(state)
    if marks is None:
        marks = _marks.get()
        if state is not None:
            with _lock:
                marks = _request_marks.setdefault(state, marks)
    captured: CapturedEvent | None = None
    for scope in scopes:
        events = scope.events
        if events is None or (marks and scope not in marks):
            continue  # a span capture; or the event belongs to other (perhaps closed) captures
        if scope.runtime is not None and scope.runtime is not runtime:
            events.other_apps += 1
            continue
        if captured is None:
            captured = _captured(runtime, event, state)
        events._items.append(captured)


def _captured(runtime: AppRuntime, event: Any, state: Any) -> CapturedEvent:
    # The ids as the delivery found them: the request's, or the current span's outside a request.
    if state is not None:
        trace_id, span_id = state.trace_id, state.span_id
    else:
        trace_id, span_id = hex_ids(trace.get_current_span())
    # The line as logsink.LogSink.emit builds it, less the three fields that are the event's own.
    fields: dict[str, Any] = {"service.name": runtime.settings.service_name}
    if trace_id is not None:
        fields["trace_id"] = trace_id
        fields["span_id"] = span_id
    fields.update(event.attributes)
    return CapturedEvent(
        name=event.name,
        level=LEVEL_NAMES.get(event.level, str(event.level)),
        attributes=orjson.loads(dumps(fields)),  # what a reader of the line gets, value for value
        trace_id=trace_id,
        span_id=span_id,
        exception=event.exception,
        time_ns=event.time_ns,
        logged=event.level >= runtime.log_sink.level,
    )


class _SpanTap(SpanProcessor):
    """Hands each span that ends on its provider to the open span captures it belongs to."""

    def __init__(self, provider: Any) -> None:
        self._provider = weakref.ref(provider)

    def on_end(self, span: ReadableSpan) -> None:
        scopes = _span_scopes
        if not scopes:
            return
        marks = _marks.get()
        provider = self._provider()
        for scope in scopes:
            if marks and scope not in marks:
                continue
            if scope.runtime is not None and scope.runtime.tracer_provider is not provider:
                continue
            scope.spans._items.append(span)  # type: ignore[union-attr]


def _tap(runtime: AppRuntime) -> None:
    """Add the span tap to ``runtime``'s tracer provider, once. (The seam for log records: the
    runtime's logger provider gets its tap here too, when it has one.)"""
    provider = runtime.tracer_provider
    with _lock:
        if provider in _taps:
            return
        add = getattr(provider, "add_span_processor", None)
        if add is None:
            for scope in _span_scopes:
                scope.spans.failures.append(  # type: ignore[union-attr]
                    f"the tracer provider of {runtime.settings.service_name!r} ({type(provider).__name__}) takes no "
                    f"span processor: its spans cannot be captured")
            _taps[provider] = None  # type: ignore[assignment]
            return
        tap = _SpanTap(provider)
        add(tap)
        _taps[provider] = tap


def _open(scope: _Scope) -> Any:
    """Register ``scope``; the capturing delivery is in place from now on. Returns the context token."""
    global _scopes, _span_scopes, _original_deliver
    with _lock:
        if not _scopes:
            current = AppRuntime.__dict__["_deliver"]
            if current is not _capturing_deliver:
                _original_deliver = current
                AppRuntime._deliver = _capturing_deliver  # type: ignore[method-assign]
        _scopes = (*_scopes, scope)
        if scope.spans is not None:
            _span_scopes = (*_span_scopes, scope)
    return _marks.set((*_marks.get(), scope))


def _close(scope: _Scope, token: Any) -> None:
    global _scopes, _span_scopes
    try:
        _marks.reset(token)
    except ValueError:  # closed in another context than it was opened in (an async fixture...)
        _marks.set(tuple(mark for mark in _marks.get() if mark is not scope))
    with _lock:
        _scopes = tuple(open_scope for open_scope in _scopes if open_scope is not scope)
        _span_scopes = tuple(open_scope for open_scope in _span_scopes if open_scope is not scope)
        if not _scopes and _original_deliver is not None:
            AppRuntime._deliver = _original_deliver  # type: ignore[method-assign]


def _runtime_of(app: Any) -> AppRuntime:
    """The runtime of ``app``, or a ``TypeError`` / ``RuntimeError`` that says what is wrong."""
    real = app
    if isinstance(app, LocalProxy):  # current_app (which passes for a Flask app with isinstance)
        try:
            real = app._get_current_object()
        except RuntimeError:
            raise RuntimeError("captured_events(current_app) was called outside an app context: pass the app "
                               "itself, or call captured_events() to capture every app") from None
    if not isinstance(real, flask.Flask):
        raise TypeError(f"captured_events(app) takes a Flask app, not {type(real).__name__}; "
                        f"captured_events() captures every app")
    sigobs = real.extensions.get("sigobs")
    if sigobs is None:
        from . import autoattach

        if autoattach.installed() and autoattach.attach(real):  # `sigobs run`: attached on first request
            sigobs = real.extensions.get("sigobs")
        else:
            reason = autoattach.failure(real)
            raise RuntimeError(
                f"flask-sigobs is not attached to the app {real.name!r}"
                + (f" (attaching failed: {reason})" if reason else "")
                + ": call SigObs(app), or sigobs.init_app(app) in its factory, before capturing its events; "
                  "or call captured_events() without an app to capture every app, those created later included")
    try:
        return sigobs.runtime(real)
    except KeyError:
        raise RuntimeError(f"app.extensions['sigobs'] of {real.name!r} does not serve this app") from None


def _label(runtime: AppRuntime | None) -> str:
    if runtime is None:
        return "every app"
    return f"app {runtime.app.name!r}, service {runtime.settings.service_name!r}"


@contextlib.contextmanager
def captured_events(app: flask.Flask | None = None) -> Iterator[CapturedEvents]:
    """Capture the events flask-sigobs delivers inside the ``with`` block.

    ``app``: only that app's (it must have ``SigObs`` attached: otherwise a ``RuntimeError`` says
    so); ``None``: every app's, apps created inside the block included. Works inside or outside an
    app context; captures nest. See the module's notes for which events a capture sees.
    """
    runtime = None if app is None else _runtime_of(app)
    events = CapturedEvents(_label(runtime))
    scope = _Scope(runtime, events=events)
    token = _open(scope)
    try:
        yield events
    finally:
        _close(scope, token)


@contextlib.contextmanager
def captured_spans(app: flask.Flask | None = None) -> Iterator[CapturedSpans]:
    """Capture the spans that end inside the ``with`` block: of ``app``'s tracer provider, or of
    every app's that delivers an event meanwhile (``None``). See :class:`CapturedSpans`."""
    runtime = None if app is None else _runtime_of(app)
    spans = CapturedSpans(_label(runtime))
    scope = _Scope(runtime, spans=spans)
    token = _open(scope)
    try:
        if runtime is not None:
            _tap(runtime)
        yield spans
    finally:
        _close(scope, token)
