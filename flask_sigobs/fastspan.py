"""The SDK's spans, made and written the short way: values flask-sigobs built are valid already.

The OpenTelemetry SDK validates every attribute of every call (``set_attribute``,
``add_event``, a span's start) and builds each span through a chain of general-purpose calls.
A request pays that for values that were made valid on purpose (primitives, bounded, redacted),
several microseconds per event on a path every request takes. Here the same SDK objects are
built and filled directly: the span is the SDK's own class, so everything else (the app's calls
on the current span, span processors, exporters, limits) behaves exactly as usual.

Whatever does not fit the short way (a span that is not the SDK's, limits tighter than our
values, a sampler of the app's own, which may look at attributes) goes through the public API.
The SDK is taken by a range (``pyproject.toml``), so what the short way relies on is not assumed:
:func:`fast_path` checks it once per process, against the SDK installed, by making the same spans
both ways and comparing what an exporter would read. Where anything differs (a field renamed, a
method gone, a value made otherwise) the SDK's public API makes every span instead, and one line
on the ``flask_sigobs`` logger says why; ``tests/test_fast_spans_match_the_sdk.py`` holds both ways
to the SDK's own spans.
"""

from __future__ import annotations

import _thread
import logging
import random
import sys
import threading
from time import time_ns
from typing import Any, NamedTuple

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, SpanProcessor, SynchronousMultiSpanProcessor, Tracer, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import DEFAULT_TRACE_STATE, SpanContext, SpanKind, Status, StatusCode, TraceFlags

#: Why the SDK's private names the short way is built of could not be imported (``None``: they were).
_MISSING_INTERNALS: str | None = None
try:
    from opentelemetry.sdk.trace import _check_span_ended, _Span
except ImportError as exc:  # a release that renamed them: this module still loads, the public API is used
    _MISSING_INTERNALS = f"opentelemetry.sdk.trace: {exc}"

    class _Span:  # type: ignore[no-redef]
        """Stands in for the SDK's span class so that :class:`RequestSpan` can be defined (and never made)."""

    def _check_span_ended(func: Any) -> Any:  # type: ignore[no-redef]
        return func
try:
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
except ImportError:  # releases before the SDK's self-metrics had none (or no no-op class): calls are made
    NoOpTracerMetrics = None  # type: ignore[assignment,misc]

_new = object.__new__
_new_tuple = tuple.__new__  # a SpanContext is a tuple: its __new__ only checks what is known here
_random_bits = random.getrandbits  # what the SDK's RandomIdGenerator draws its ids from
_RLock = getattr(_thread, "RLock", None) or threading.RLock  # the C lock: threading.RLock is a Python call
logger = logging.getLogger("opentelemetry.sdk.trace")  # where the SDK says a span ended twice
_UNSET = Status(StatusCode.UNSET)
_NO_LINKS: BoundedList = BoundedList(None)  # shared and never appended to: see RequestSpan._add_link
#: The W3C level 2 "random trace id" flag, which the SDK sets from 1.4x on; 0 where it does not know it.
_RANDOM_TRACE_ID = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED | _RANDOM_TRACE_ID)
_MISSING = object()
#: The fields of the SDK's ``BoundedAttributes`` that ``RequestSpan.made`` does not set itself, with
#: the values its constructor gives them (none on the newest SDK); the start-up check proves the rest.
_MORE_ATTRIBUTE_FIELDS = {name: value for name, value in vars(BoundedAttributes(None, None, immutable=False)).items()
                          if name not in ("_dict", "maxlen", "dropped", "max_value_len", "_lock", "_immutable")}
_TRACER_FIELDS = ("id_generator", "sampler", "resource", "span_processor",
                  "instrumentation_info", "_span_limits", "_instrumentation_scope")


class Room(NamedTuple):
    """A tracer's ``SpanLimits`` as numbers to compare with (``sys.maxsize`` where unlimited): what a
    span takes as it is. A request span's class holds its tracer's, read without a call."""

    attributes: int
    length: int
    events: int
    event_attributes: int
    event_length: int

    @classmethod
    def of(cls, limits: Any) -> "Room":
        def most(limit: int | None) -> int:
            return sys.maxsize if limit is None else limit

        return cls(most(limits.max_span_attributes), most(limits.max_span_attribute_length),
                   most(limits.max_events), most(limits.max_event_attributes), most(limits.max_attribute_length))


#: The value types a span attribute holds as they are (the SDK also takes flat sequences of one of them).
PRIMITIVES = (str, bool, int, float)


def longest_text(attributes: dict[str, Any]) -> int | None:
    """The length of the longest text among ``attributes`` when the SDK would keep every one as it
    is (text keys, single values of the four primitive types exactly: a subclass may convert
    differently); ``None`` when it would not. With a :class:`Room`, a check of types and lengths where
    the SDK's own pass validates and copies each value."""
    longest = 0
    for key, value in attributes.items():
        kind = type(value)
        if type(key) is not str or not key or kind not in PRIMITIVES:
            return None
        if kind is str and len(value) > longest:
            longest = len(value)
    return longest


_SDK_SPAN_TYPES: dict[type, bool] = {}  # isinstance() against the SDK's (abstract) Span is slow


def _sdk_span(span: Any) -> bool:
    """Whether ``span`` is the SDK's (its fields are the ones read below); cached per class."""
    kind = type(span)
    sdk = _SDK_SPAN_TYPES.get(kind)
    if sdk is None:
        sdk = _SDK_SPAN_TYPES[kind] = issubclass(kind, _Span)
    return sdk


def _sdk_room(span: Any) -> Room | None:
    """The limits of an SDK span not made here (read from its tracer's ``SpanLimits`` now); ``None``
    for a span that is not the SDK's: its own methods take the values."""
    return Room.of(span._limits) if _sdk_span(span) else None


def set_attributes(span: Any, attributes: dict[str, Any], longest: int) -> None:
    """``span.set_attributes(attributes)``, for attributes valid already."""
    room = getattr(span, "_room", None) or _sdk_room(span)  # a RequestSpan's: read once per tracer
    if room is not None and longest <= room.length:
        stored = span._attributes
        with stored._lock:  # the count is checked where the values go in
            if span._end_time is None and len(attributes) + len(stored._dict) <= room.attributes:
                stored._dict.update(attributes)
                return
    span.set_attributes(attributes)


def add_event(span: Any, name: str, attributes: dict[str, Any], time_ns: int, longest: int) -> None:
    """``span.add_event(name, attributes, time_ns)``, for attributes valid already."""
    room = getattr(span, "_room", None) or _sdk_room(span)  # a RequestSpan's: read once per tracer
    if room is not None and len(attributes) <= room.event_attributes and longest <= room.event_length:
        event = _new(Event)  # the SDK's Event, its three fields set without two constructors' calls
        event._name = name
        event._timestamp = time_ns
        event._attributes = attributes
        with span._lock:  # the bound is checked where the event goes in
            if span._end_time is None and len(span._events) < room.events:
                span._events.append(event)
                return
    # Ended, full (the SDK's call drops the oldest event and counts it), or values the SDK must check.
    span.add_event(name, attributes, timestamp=time_ns)


def public_set_attributes(span: Any, attributes: dict[str, Any], longest: int) -> None:
    """:func:`set_attributes` through the SDK's public API: where the short way is off."""
    span.set_attributes(attributes)


def public_add_event(span: Any, name: str, attributes: dict[str, Any], time_ns: int, longest: int) -> None:
    """:func:`add_event` through the SDK's public API: where the short way is off."""
    span.add_event(name, attributes, timestamp=time_ns)


#: The samplers a ``ParentBased`` sampler delegates to, and the SDK's defaults for each.
_DELEGATES = (("_root", sampling.ALWAYS_ON), ("_remote_parent_sampled", sampling.ALWAYS_ON),
              ("_remote_parent_not_sampled", sampling.ALWAYS_OFF), ("_local_parent_sampled", sampling.ALWAYS_ON),
              ("_local_parent_not_sampled", sampling.ALWAYS_OFF))


def ignores_attributes(sampler: Any) -> bool:
    """Whether ``sampler`` is one of the SDK's own, which decide without the span's attributes."""
    if isinstance(sampler, sampling.ParentBased):
        return all(ignores_attributes(getattr(sampler, name, None)) for name, _ in _DELEGATES)
    return type(sampler) in (sampling.StaticSampler, sampling.TraceIdRatioBased)


def _is_default_sampler(sampler: Any) -> bool:
    """``ParentBased(ALWAYS_ON)`` with its default delegates: the SDK's default sampler."""
    return isinstance(sampler, sampling.ParentBased) and all(
        getattr(sampler, name, None) is default for name, default in _DELEGATES)


class RequestSpan(_Span):
    """The SDK's span class, its fields set directly: the SDK's constructor validates attributes
    and checks arguments that are known good here.

    What is the same for every span of a tracer (resource, scope, limits, processors) is a class
    attribute of :meth:`for_tracer`'s subclass, and what every span starts with (kind, status,
    no end) one of this class: an instance sets only what is its own. The SDK's methods read
    and assign them as they would its own instance's fields.
    """

    _kind = SpanKind.SERVER
    _status = _UNSET
    _start_time = None
    _end_time = None
    _trace_config = None
    _record_exception = True
    _set_status_on_exception = True
    _record_end_metrics = None  # the SDK's own self-metrics are off (the default): nothing to call
    _links = _NO_LINKS  # a request span seldom gets links: the list is made by the first one
    _dropped_events = 0  # counted by _add_event once the events reach SpanLimits.max_events
    #: While set (to the request state holding the span), ``end()`` does nothing and the span stays
    #: open: see ``otel_setup.hold_end``. Set at ``made()``, so holding adds no field.
    _hold: Any = None

    @classmethod
    def for_tracer(cls, tracer: Any) -> type["RequestSpan"]:
        limits = tracer._span_limits
        return type("RequestSpan", (cls,), {
            "__module__": cls.__module__, "_resource": tracer.resource, "_sampler": tracer.sampler,
            "_span_processor": tracer.span_processor, "_limits": limits,
            "_instrumentation_info": tracer.instrumentation_info,
            "_instrumentation_scope": tracer._instrumentation_scope,
            "_max_links": limits.max_links, "_room": Room.of(limits),
            "_max_attributes": limits.max_span_attributes,
            "_max_attribute_length": limits.max_span_attribute_length})

    _max_links = _max_attributes = _max_attribute_length = None
    _room: Room | None = None  # for_tracer's subclass: its tracer's limits

    @classmethod
    def made(cls, name: str, context: SpanContext, parent: SpanContext | None,
             attributes: dict[str, Any], clean: bool) -> "RequestSpan":
        """A span with its own fields set: the SDK's ``__new__`` (a Python call that only refuses
        its abstract class) and ``__init__`` (which validates) are not called.

        One re-entrant lock guards the span, its attributes and its events, where the SDK makes
        three locks. The SDK takes the span's lock and, inside it, the attributes' or the events'
        own, so one lock for all three must be re-entrant; a single lock cannot be taken in two
        orders, so no deadlock is possible. A request span is written by its request and read by
        the export thread once ended: the lock is seldom contended. Locks are objects the garbage
        collector tracks: a span waits for its export batch long enough to reach the oldest
        generation, and two fewer objects each made full collections rarer (the collector's cost
        per request went from 4.3 to 3.8 us).
        """
        span = _new(cls)
        span._name = name
        span._context = context
        span._parent = parent
        span._lock = lock = _RLock()
        span._hold = None
        if clean:  # the SDK's BoundedAttributes(...) with its fields set: values valid already, not cleaned again
            span._attributes = stored = _new(BoundedAttributes)
            stored._dict = dict(attributes)
            stored.maxlen = cls._max_attributes
            stored.dropped = 0
            stored.max_value_len = cls._max_attribute_length
            stored._lock = lock
            stored._immutable = False
            if _MORE_ATTRIBUTE_FIELDS:  # fields an SDK release added (1.40's _extended_attributes): as its constructor sets them
                vars(stored).update(_MORE_ATTRIBUTE_FIELDS)
        else:
            span._attributes = BoundedAttributes(cls._max_attributes, attributes, immutable=False,
                                                 max_value_len=cls._max_attribute_length)
            span._attributes._lock = lock
        span._events = []  # bounded by add_event and _add_event: the SDK's deque costs more to make
        return span

    def set_attribute(self, key: str, value: Any) -> None:
        """The SDK's ``set_attribute``, less the call that would store the very value the key holds:
        opentelemetry-instrumentation-flask sets each attribute it started the span with once
        more, and the SDK would validate each again, under the span's lock."""
        if self._end_time is None and self._attributes._dict.get(key, _MISSING) is value:
            return
        super().set_attribute(key, value)

    @property
    def dropped_events(self) -> int:
        return self._dropped_events

    @_check_span_ended  # the SDK's: under the span's lock, refused once the span has ended
    def _add_event(self, event: Any) -> None:
        """The SDK's ``BoundedList.append`` on the span's plain list: when full, the oldest event goes
        and ``dropped_events`` counts it."""
        events = self._events
        if len(events) >= self._room.events:
            self._dropped_events += 1
            if not self._room.events:
                return
            del events[0]
        events.append(event)

    def _add_link(self, link: Any) -> None:
        if self._links is _NO_LINKS:
            self._links = BoundedList(self._max_links)
        super()._add_link(link)

    def end(self, end_time: int | None = None) -> None:
        """The SDK's ``end``, handing the span processors the span itself rather than a copy: once
        ended, the SDK's span refuses every change, so the copy would only repeat it."""
        if self._hold is not None:  # otel_setup.release_end ends it
            return
        with self._lock:
            if self._end_time is not None:
                logger.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
            self._attributes._immutable = True
        if self._record_end_metrics:
            self._record_end_metrics()
        processor = self._span_processor
        if type(processor) is SynchronousMultiSpanProcessor and len(processor._span_processors) == 1:
            processor = processor._span_processors[0]  # the usual export queue, without the SDK's loop
        # The SDK's hook just before the end; releases before 1.4x have none, and call none a processor defines.
        on_ending = getattr(type(processor), "_on_ending", None) if _SDK_ON_ENDING else None
        if on_ending is not None and on_ending not in _NO_OP_ON_ENDING:
            processor._on_ending(self)
        processor.on_end(self)


class ServerSpans:
    """Starts the request's server span with ``tracer``: the short way when the tracer is the SDK's
    and its sampler one of the SDK's, ``tracer.start_span`` otherwise."""

    def __init__(self, tracer: Any, longest: int | None, fast: bool = True) -> None:
        """``longest``: the longest text of the attribute values the spans start with, known when
        flask-sigobs built them; ``None`` when someone else did: the SDK's container validates them.
        ``fast``: whether the short way may be taken at all (:func:`fast_path`, ``SIGOBS_FAST_PATH``)."""
        self._tracer = tracer
        self._longest = longest
        self.direct = fast and isinstance(tracer, Tracer) and ignores_attributes(tracer.sampler) \
            and all(hasattr(tracer, name) for name in _TRACER_FIELDS)
        #: Root spans are sampled by the SDK's default sampler and get the SDK's random ids.
        self._default_root = self.direct and _is_default_sampler(tracer.sampler) \
            and type(tracer.id_generator) is RandomIdGenerator
        self._span_class = RequestSpan.for_tracer(tracer) if self.direct else None
        #: The tracer's on/off switch (its TracerConfigurator's); SDK releases before 1.4x have none: always on.
        self._is_enabled = getattr(tracer, "_is_enabled", None)
        metrics = getattr(tracer, "_tracer_metrics", None)  # the SDK's self-metrics, when turned on
        self._metrics = None if metrics is None or (
            NoOpTracerMetrics is not None and isinstance(metrics, NoOpTracerMetrics)) else metrics

    def start(self, name: str, parent: Any, attributes: dict[str, Any], start_time: int) -> Any:
        tracer = self._tracer
        if not self.direct:
            return tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes,
                                     start_time=start_time)
        if self._is_enabled is not None and not self._is_enabled():
            return trace.NonRecordingSpan(trace.get_current_span(parent).get_span_context())
        # An empty context (no caller's traceparent, no span around the request: the common case) holds
        # no parent span; ``None`` means the current context, which may.
        empty = parent is not None and not parent
        parent_context = None if empty else trace.get_current_span(parent).get_span_context()
        ids = tracer.id_generator
        if parent_context is None or not parent_context.is_valid:
            parent_context = None
            if self._default_root:  # the common case: a root span, sampled, random ids, no trace state
                return self._made(name, _root_context(), None, attributes, start_time, parent,
                                  sampling.Decision.RECORD_AND_SAMPLE)
            trace_id = ids.generate_trace_id()
            random_trace_id = _RANDOM_TRACE_ID and ids.is_trace_id_random()
        else:
            trace_id = parent_context.trace_id
            random_trace_id = _RANDOM_TRACE_ID and parent_context.trace_flags.random_trace_id
        decision = tracer.sampler.should_sample(parent, trace_id, name, SpanKind.SERVER, None, ())
        flags = TraceFlags.SAMPLED if decision.decision.is_sampled() else TraceFlags.DEFAULT
        if random_trace_id:
            flags |= _RANDOM_TRACE_ID
        span_context = SpanContext(trace_id, ids.generate_span_id(), is_remote=False,
                                   trace_flags=TraceFlags(flags), trace_state=decision.trace_state)
        if not decision.decision.is_recording():
            if self._metrics is not None:
                self._metrics.start_span(parent_context, decision.decision)
            return trace.NonRecordingSpan(span_context)
        if decision.attributes:
            attributes = {**decision.attributes, **attributes}
        return self._made(name, span_context, parent_context, attributes, start_time, parent, decision.decision)

    def _made(self, name: str, span_context: SpanContext, parent_context: SpanContext | None,
              attributes: dict[str, Any], start_time: int, parent: Any, decision: Any) -> Any:
        longest = self._longest if self._longest is not None else longest_text(attributes)
        room = self._span_class._room
        clean = longest is not None and longest <= room.length and len(attributes) <= room.attributes
        span = self._span_class.made(name, span_context, parent_context, attributes, clean)
        if self._metrics is not None:
            span._record_end_metrics = self._metrics.start_span(parent_context, decision)
        # What span.start() does, less its lock: no one else has the span yet.
        span._start_time = start_time if start_time is not None else time_ns()
        processor = span._span_processor
        if type(processor) is SynchronousMultiSpanProcessor and len(processor._span_processors) == 1:
            processor = processor._span_processors[0]  # the usual export queue, without the SDK's loop
        if type(processor).on_start not in _NO_OP_ON_START:
            processor.on_start(span, parent_context=parent)
        return span


def _root_context() -> SpanContext:
    """What ``RandomIdGenerator`` and ``SpanContext(trace_id, span_id, False, sampled)`` make, for
    a root span the default sampler samples: two random ids (never zero), valid, sampled."""
    trace_id = _random_bits(128)
    while not trace_id:
        trace_id = _random_bits(128)
    span_id = _random_bits(64)
    while not span_id:
        span_id = _random_bits(64)
    return _new_tuple(SpanContext, (trace_id, span_id, False, _SAMPLED, DEFAULT_TRACE_STATE, True))


#: The SDK's span processors whose ``on_start`` and ``_on_ending`` do nothing (the export queue is
#: a ``BatchSpanProcessor``): a span that finds one of these as its only processor skips the call.
_NO_OP_ON_START = frozenset({SpanProcessor.on_start, BatchSpanProcessor.on_start, SimpleSpanProcessor.on_start})
_SDK_ON_ENDING = hasattr(SpanProcessor, "_on_ending")
_NO_OP_ON_ENDING = frozenset({getattr(kind, "_on_ending", None) for kind in (SpanProcessor, BatchSpanProcessor,
                                                                              SimpleSpanProcessor)})


class ServerSpanProvider:
    """The tracer provider handed to opentelemetry-instrumentation-flask when flask-sigobs
    instruments the app: its tracers start the request's server span the short way.

    The instrumentation's span is then a :class:`RequestSpan`, the SDK's class. Its attributes are
    the instrumentation's, not ours: :func:`longest_text` and the tracer's :class:`Room` check their types and
    lengths, and any they do not pass go through the SDK's container. Every other span (kinds
    other than server, links, another tracer's) comes from the SDK's own ``start_span``.
    ``tests/test_fast_spans_match_the_sdk.py`` holds the exported span to the one the SDK makes.
    """

    def __init__(self, provider: Any) -> None:
        self._provider = provider

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        tracer = self._provider.get_tracer(*args, **kwargs)
        spans = ServerSpans(tracer, None)
        return ServerSpanTracer(tracer, spans) if spans.direct else tracer


class ServerSpanTracer:
    """An SDK tracer whose ``start_span`` starts a plain server span the short way."""

    def __init__(self, tracer: Any, spans: ServerSpans) -> None:
        self._tracer = tracer
        self._spans = spans

    def start_span(self, name: str, context: Any = None, kind: SpanKind = SpanKind.INTERNAL,
                   attributes: Any = None, links: Any = (), start_time: int | None = None,
                   record_exception: bool = True, set_status_on_exception: bool = True) -> Any:
        if kind is SpanKind.SERVER and not links and record_exception and set_status_on_exception:
            return self._spans.start(name, context, attributes or {}, start_time)
        return self._tracer.start_span(name, context, kind, attributes, links, start_time, record_exception,
                                       set_status_on_exception)

    def __getattr__(self, name: str) -> Any:  # start_as_current_span and the rest: the SDK's
        return getattr(self._tracer, name)
