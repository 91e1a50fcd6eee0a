"""The short way of making and filling spans (``fastspan``) builds what the SDK's own calls build.

The request span and its events skip the SDK's second validation of values flask-sigobs made
valid; these tests hold that shortcut to the SDK: the same fields, the same exported span, the
SDK's limits and the app's own sampler still obeyed, the app's own calls still validated.
"""

from __future__ import annotations

import json
import threading

import pytest
from flask import Flask
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanKind, Status

from flask_sigobs import fastspan

ATTRIBUTES = {"http.request.method": "GET", "url.path": "/items/7", "http.route": "/items/<int:item_id>",
              "client.address": "127.0.0.1", "server.port": 80, "user_agent.original": "probe/1.0"}


def provider(**kwargs):
    exporter = InMemorySpanExporter()
    made = TracerProvider(resource=Resource.create({"service.name": "fast"}), **kwargs)
    made.add_span_processor(SimpleSpanProcessor(exporter))
    return made, exporter


def exported(span) -> dict:
    data = json.loads(span.to_json())
    for key in ("context", "parent_id", "start_time", "end_time"):
        data.pop(key)
    for event in data["events"]:
        event.pop("timestamp")
    return data


def test_a_request_span_has_every_field_the_sdk_constructor_sets():
    made, _ = provider()
    tracer = made.get_tracer("flask_sigobs")
    spans = fastspan.ServerSpans(tracer, 1100)
    assert spans.direct, "the SDK's tracer with its default sampler takes the short way"
    ours = spans.start("GET /items/<int:item_id>", None, dict(ATTRIBUTES), 1)
    theirs = tracer.start_span("GET /items/<int:item_id>", kind=SpanKind.SERVER, attributes=dict(ATTRIBUTES))
    assert isinstance(ours, fastspan.RequestSpan)
    fields = set(vars(ours)).union(*(vars(klass) for klass in type(ours).__mro__[:2]))
    assert fields >= set(vars(theirs)), "every field the SDK's constructor sets, ours has"
    for name in vars(theirs):
        if name not in ("_name", "_context", "_parent", "_lock", "_attributes", "_events", "_links", "_start_time"):
            mine, sdk = getattr(ours, name), getattr(theirs, name)
            if isinstance(sdk, Status):
                mine, sdk = (mine.status_code, mine.description), (sdk.status_code, sdk.description)
            if name == "_record_end_metrics" and mine is None:  # the SDK's end() skips a false one too
                from opentelemetry.sdk.trace._tracer_metrics import noop  # SDK 1.4x: the SDK's self-metrics

                assert sdk is noop, "without self-metrics the SDK holds its no-op: nothing to record"
                continue
            assert mine == sdk, name
    assert ours._events == [] and ours._room.events == theirs._events._dq.maxlen, "a plain list, the SDK's bound"
    for span in (ours, theirs):
        span.add_link(trace.SpanContext(7, 8, is_remote=True), {"link.kind": "follows"})
    assert type(ours._links) is type(theirs._links) and ours._links._dq.maxlen == theirs._links._dq.maxlen
    assert [(l.context.span_id, dict(l.attributes)) for l in ours.links] == \
        [(l.context.span_id, dict(l.attributes)) for l in theirs.links] == [(8, {"link.kind": "follows"})]
    assert fastspan.RequestSpan._links.dropped == 0 and len(fastspan.RequestSpan._links) == 0, "the shared empty list"
    assert (ours._attributes.maxlen, ours._attributes.max_value_len) == \
        (theirs._attributes.maxlen, theirs._attributes.max_value_len)
    mine, sdk = ours._attributes, theirs._attributes
    assert type(mine) is type(sdk) and set(vars(mine)) == set(vars(sdk)), "the SDK's container, every field"
    assert mine.dropped == sdk.dropped == 0 and ours.dropped_events == theirs.dropped_events == 0
    assert ours._attributes._dict == theirs._attributes._dict
    assert ours._attributes._immutable is theirs._attributes._immutable is False
    fastspan.add_event(ours, "flask.request_started", {"request.id": "r1"}, 5, 1100)
    theirs.add_event("flask.request_started", {"request.id": "r1"}, 5)
    mine, sdk = ours.events[0], theirs.events[0]
    assert type(mine) is type(sdk) and set(vars(mine)) == set(vars(sdk))
    assert (mine.name, mine.timestamp, dict(mine.attributes)) == (sdk.name, sdk.timestamp, dict(sdk.attributes))


def test_the_short_way_exports_the_same_span_as_the_sdk():
    made, exporter = provider()
    tracer = made.get_tracer("flask_sigobs")
    spans = fastspan.ServerSpans(tracer, 1100)
    for fast in (True, False):
        if fast:
            span = spans.start("GET /items/<int:item_id>", None, dict(ATTRIBUTES), None)
            fastspan.add_event(span, "flask.request_finished", {"http.response.status_code": 200}, 5, 1100)
            fastspan.set_attributes(span, {"http.response.status_code": 200}, 1100)
        else:
            span = tracer.start_span("GET /items/<int:item_id>", kind=SpanKind.SERVER, attributes=dict(ATTRIBUTES))
            span.add_event("flask.request_finished", {"http.response.status_code": 200}, timestamp=5)
            span.set_attributes({"http.response.status_code": 200})
        span.end()
    fast, sdk = exporter.get_finished_spans()
    assert exported(fast) == exported(sdk)
    assert fast.context.trace_flags.sampled and fast.parent is None
    assert type(fast.context) is type(sdk.context)
    assert fast.context[2:] == sdk.context[2:], "all but the two random ids: remote, flags, state, valid"
    assert fast.context.trace_id.bit_length() > 64 and 0 < fast.context.span_id < 2 ** 64


def test_an_id_generator_of_the_apps_own_makes_the_ids():
    class Counting(fastspan.RandomIdGenerator):
        def generate_trace_id(self) -> int:
            return 0xABC

        def generate_span_id(self) -> int:
            return 0xDEF

    made, exporter = provider(id_generator=Counting())
    span = fastspan.ServerSpans(made.get_tracer("flask_sigobs"), 1100).start("GET /", None, {}, None)
    span.end()
    (ended,) = exporter.get_finished_spans()
    assert (ended.context.trace_id, ended.context.span_id) == (0xABC, 0xDEF)
    theirs = made.get_tracer("sdk").start_span("GET /", kind=SpanKind.SERVER)
    assert ended.context.trace_flags.sampled and ended.context.trace_flags == theirs.context.trace_flags, \
        "the SDK's flags (from 1.4x on, random-trace-id too)"


def test_a_processor_of_the_apps_own_sees_the_request_span_start_end_and_ending():
    """The SDK's own processors do nothing at a span's start or just before its end, and a request
    span skips those calls; a processor of the app's own is still called for each."""
    class Watching(SimpleSpanProcessor):
        def __init__(self, exporter) -> None:
            super().__init__(exporter)
            self.seen: list[tuple[str, str]] = []

        def on_start(self, span, parent_context=None) -> None:
            self.seen.append(("start", span.name))

        def _on_ending(self, span) -> None:
            self.seen.append(("ending", span.name))

    for only_one in (True, False):
        made = TracerProvider(resource=Resource.create({"service.name": "fast"}))
        exporter = InMemorySpanExporter()
        watching = Watching(exporter)
        made.add_span_processor(watching)
        if not only_one:
            made.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        span = fastspan.ServerSpans(made.get_tracer("flask_sigobs"), 1100).start("GET /", None, {}, None)
        assert isinstance(span, fastspan.RequestSpan)
        span.end()
        ending = [("ending", "GET /")] if hasattr(SimpleSpanProcessor, "_on_ending") else []  # SDK 1.4x's hook
        assert watching.seen == [("start", "GET /"), *ending]
        assert [ended.name for ended in exporter.get_finished_spans()] == ["GET /"]


def test_limits_tighter_than_our_values_are_applied_by_the_sdk():
    made, exporter = provider(span_limits=SpanLimits(max_span_attribute_length=5, max_attribute_length=4))
    spans = fastspan.ServerSpans(made.get_tracer("flask_sigobs"), 1100)
    span = spans.start("GET /", None, dict(ATTRIBUTES), None)
    fastspan.add_event(span, "custom", {"note": "a long value"}, 5, 1100)
    span.end()
    (finished,) = exporter.get_finished_spans()
    assert finished.attributes["user_agent.original"] == "probe"
    assert finished.events[0].attributes["note"] == "a lo"


def test_an_apps_own_sampler_sees_the_attributes_and_decides():
    class DropHealth(sampling.Sampler):
        def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                          trace_state=None):
            seen.append(dict(attributes or {}))
            drop = (attributes or {}).get("url.path") == "/health"
            return sampling.SamplingResult(sampling.Decision.DROP if drop else sampling.Decision.RECORD_AND_SAMPLE,
                                           attributes)

        def get_description(self) -> str:
            return "DropHealth"

    seen: list[dict] = []
    made, exporter = provider(sampler=DropHealth())
    spans = fastspan.ServerSpans(made.get_tracer("flask_sigobs"), 1100)
    assert not spans.direct
    spans.start("GET /health", None, {**ATTRIBUTES, "url.path": "/health"}, None).end()
    spans.start("GET /items", None, dict(ATTRIBUTES), None).end()
    assert [attrs["url.path"] for attrs in seen] == ["/health", "/items/7"]
    assert [span.name for span in exporter.get_finished_spans()] == ["GET /items"]


@pytest.mark.parametrize("flags, recorded", [("01", True), ("00", False)])
def test_a_callers_traceparent_is_the_parent_and_its_sampling_decision_holds(flags, recorded):
    from opentelemetry import propagate

    made, exporter = provider()
    spans = fastspan.ServerSpans(made.get_tracer("flask_sigobs"), 1100)
    parent = propagate.extract({"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-{flags}"})
    span = spans.start("GET /", parent, dict(ATTRIBUTES), None)
    assert span.get_span_context().trace_id == int("ab" * 16, 16)
    assert span.is_recording() is recorded
    span.end()
    finished = exporter.get_finished_spans()
    assert len(finished) == int(recorded)
    if recorded:
        assert finished[0].parent.span_id == int("cd" * 8, 16) and finished[0].parent.is_remote


def test_the_apps_own_calls_on_the_request_span_are_still_validated(observe, span_source):
    app = Flask("validated")

    @app.route("/")
    def index() -> str:
        span = trace.get_current_span()
        span.set_attribute("app.valid", 7)
        span.set_attribute("app.list", [1, "mixed"])  # the SDK makes it a tuple
        span.set_attribute("app.invalid", object())  # the SDK replaces it with None
        span.add_event("app.event", {"ok": True, "bad": object()})
        return "ok"

    observed = observe(app)
    assert observed.client().get("/").status_code == 200
    (span,) = observed.server_spans()
    # What the installed SDK's own span makes of the same calls (releases differ on invalid values).
    theirs = TracerProvider().get_tracer("sdk").start_span("GET /", kind=SpanKind.SERVER)
    theirs.set_attribute("app.list", [1, "mixed"])
    theirs.set_attribute("app.invalid", object())
    theirs.add_event("app.event", {"ok": True, "bad": object()})
    assert span.attributes["app.valid"] == 7
    for key in ("app.list", "app.invalid"):
        assert span.attributes.get(key, "missing") == theirs.attributes.get(key, "missing"), key
    (event,) = [event for event in span.events if event.name == "app.event"]
    assert dict(event.attributes) == dict(theirs.events[0].attributes)


def test_an_ended_request_span_is_handed_over_once_and_changes_no_more(caplog):
    made, exporter = provider()
    spans = fastspan.ServerSpans(made.get_tracer("flask_sigobs"), 1100)
    span = spans.start("GET /", None, dict(ATTRIBUTES), None)
    span.end()
    span.end()  # as the SDK does: a warning, nothing exported twice
    span.set_attribute("late", 1)
    fastspan.set_attributes(span, {"later": 2}, 1100)
    fastspan.add_event(span, "late.event", {}, 5, 1100)
    (finished,) = exporter.get_finished_spans()
    assert "late" not in finished.attributes and "later" not in finished.attributes
    assert not finished.events
    assert any("ended" in record.getMessage() for record in caplog.records)


def test_one_lock_guards_a_request_span_its_attributes_and_its_events():
    """The SDK takes a span's lock and, inside it, its attributes' or events' own: one lock for all
    three must let that nesting through, from several threads at once, and lose nothing."""
    made, exporter = provider()
    for clean in (True, False):
        span = fastspan.ServerSpans(made.get_tracer("flask_sigobs"), 1100 if clean else None).start(
            "GET /", None, {**ATTRIBUTES, "odd": [1, 2]} if not clean else dict(ATTRIBUTES), None)
        assert span._lock is span._attributes._lock and type(span._events) is list, "the span's lock guards its events"

        def calls(i: int) -> None:
            for round_ in range(50):
                span.set_attribute(f"thread.{i}", round_)
                span.set_attributes({f"thread.{i}.more": round_})
                span.add_event(f"sdk.{i}", {"round": round_})
                fastspan.add_event(span, f"short.{i}", {"round": round_}, 5, 1100)
                fastspan.set_attributes(span, {f"thread.{i}.short": round_}, 1100)
                assert len(list(span.events)) <= 128 and dict(span.attributes)

        threads = [threading.Thread(target=calls, args=(i,), daemon=True) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert not any(thread.is_alive() for thread in threads), "a lock was taken twice and never let go"
        span.record_exception(ValueError("late"))
        span.end()
        finished = exporter.get_finished_spans()[-1]
        assert all(finished.attributes[f"thread.{i}{suffix}"] == 49
                   for i in range(4) for suffix in ("", ".more", ".short"))
        assert len(finished.events) == 128 and finished.dropped_events == 4 * 50 * 2 + 1 - 128
        assert finished.events[-1].name == "exception"


@pytest.mark.parametrize("max_events", [SpanLimits.UNSET, 0, 1, 3])
def test_the_request_spans_events_keep_the_sdks_bound(max_events):
    """The request span's events are on a plain list, not the SDK's deque: the same bound, the
    oldest dropped first and counted, whichever way an event comes (the short way, the SDK's
    ``add_event``, a recorded exception)."""
    made, exporter = provider(span_limits=SpanLimits(max_events=max_events))
    tracer = made.get_tracer("flask_sigobs")
    for fast in (True, False):
        if fast:
            span = fastspan.ServerSpans(tracer, 1100).start("GET /", None, dict(ATTRIBUTES), None)
        else:
            span = tracer.start_span("GET /", kind=SpanKind.SERVER, attributes=dict(ATTRIBUTES))
        for number in range(5):
            fastspan.add_event(span, f"short.{number}", {"n": number}, number, 1100)
            span.add_event(f"sdk.{number}", {"n": number}, timestamp=number)
        span.record_exception(ValueError("last"), timestamp=9)
        span.end()
        fastspan.add_event(span, "after.the.end", {}, 10, 1100)
    ours, theirs = exporter.get_finished_spans()
    assert isinstance(ours, fastspan.RequestSpan) and not isinstance(theirs, fastspan.RequestSpan)
    assert [event.name for event in ours.events] == [event.name for event in theirs.events]
    assert ours.dropped_events == theirs.dropped_events == (0 if max_events is SpanLimits.UNSET else 11 - max_events)
    assert len(ours.events) == (11 if max_events is SpanLimits.UNSET else max_events)
    assert exported(ours) == exported(theirs)


@pytest.mark.parametrize("room", [0, 1])
def test_attributes_set_the_short_way_keep_the_sdks_bound(room):
    """A span with no room (or one place) left for attributes: what the short way sets goes through
    the SDK's container, which drops the oldest and counts it, as the SDK's own call does."""
    limit = len(ATTRIBUTES) + room
    made, exporter = provider(span_limits=SpanLimits(max_span_attributes=limit))
    tracer = made.get_tracer("flask_sigobs")
    for how in ("short way, request span", "short way, SDK span", "SDK"):
        if how == "short way, request span":
            span = fastspan.ServerSpans(tracer, 1100).start("GET /", None, dict(ATTRIBUTES), None)
        else:
            span = tracer.start_span("GET /", kind=SpanKind.SERVER, attributes=dict(ATTRIBUTES))
        if how == "SDK":
            span.set_attributes({"http.response.status_code": 200, "enduser.id": "alice"})
        else:
            fastspan.set_attributes(span, {"http.response.status_code": 200, "enduser.id": "alice"}, 1100)
        span.end()
    finished = exporter.get_finished_spans()
    assert isinstance(finished[0], fastspan.RequestSpan)
    assert len({tuple(span.attributes.items()) for span in finished}) == 1, [dict(s.attributes) for s in finished]
    assert [span.dropped_attributes for span in finished] == [2 - room] * 3
    assert len(finished[0].attributes) == limit


def test_a_span_that_is_not_the_sdks_gets_its_own_calls():
    """A tracer provider of another kind makes spans without the SDK's fields: the short way
    leaves them alone and calls their own methods."""

    class OtherSpan(trace.NonRecordingSpan):
        def __init__(self) -> None:
            super().__init__(trace.INVALID_SPAN_CONTEXT)
            self.calls = []

        def is_recording(self) -> bool:
            return True

        def set_attributes(self, attributes) -> None:
            self.calls.append(("set_attributes", dict(attributes)))

        def add_event(self, name, attributes=None, timestamp=None) -> None:
            self.calls.append(("add_event", name, dict(attributes or {}), timestamp))

    span = OtherSpan()
    fastspan.set_attributes(span, {"http.response.status_code": 200}, 1100)
    fastspan.add_event(span, "flask.request_finished", {"request.id": "r1"}, 5, 1100)
    assert span.calls == [("set_attributes", {"http.response.status_code": 200}),
                          ("add_event", "flask.request_finished", {"request.id": "r1"}, 5)]


def _instrumented_spans(tracer_provider, exporter) -> list:
    """The spans opentelemetry-instrumentation-flask makes for a few requests with ``tracer_provider``."""
    from .extras import flask_instrumentor

    FlaskInstrumentor = flask_instrumentor()

    app = Flask("instrumented")

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> str:
        trace.get_current_span().set_attribute("app.item", item_id)
        return "item"

    @app.route("/fail")
    def fail() -> str:
        raise ValueError("no such item")

    FlaskInstrumentor.instrument_app(app, tracer_provider=tracer_provider)
    client = app.test_client()
    assert client.get("/items/7?q=1", headers={"User-Agent": "probe/1.0", "traceparent":
                                               f"00-{'ab' * 16}-{'cd' * 8}-01"}).status_code == 200
    assert client.get("/fail").status_code == 500
    assert client.post("/missing", headers={"User-Agent": "x" * 40}).status_code == 404
    assert client.open("/items/8", method="PROPFIND").status_code == 405
    return list(exporter.get_finished_spans())


@pytest.mark.parametrize("limits", [SpanLimits(), SpanLimits(max_span_attribute_length=10),
                                    SpanLimits(max_span_attributes=5)])
def test_the_instrumentations_span_made_the_short_way_is_the_sdks(limits, monkeypatch):
    """flask-sigobs hands opentelemetry-instrumentation-flask a provider whose tracer starts its server
    span the short way (``ServerSpanProvider``): what reaches the exporter is what the SDK makes,
    under the default limits and under limits that cut the instrumentation's values."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    spans = {}
    for short in (False, True):
        made, exporter = provider(span_limits=limits)
        finished = _instrumented_spans(fastspan.ServerSpanProvider(made) if short else made, exporter)
        assert all(isinstance(span, fastspan.RequestSpan) is short for span in finished)
        spans[short] = [exported(span) for span in finished]
    assert len(spans[True]) == 4
    assert spans[True] == spans[False]
    assert spans[True][0]["attributes"]["app.item"] == 7 and spans[True][0]["kind"] == "SpanKind.SERVER"
    assert spans[True][1]["status"]["status_code"] == "ERROR"
    assert [event["name"] for event in spans[True][1]["events"]] == ["exception"]


def test_a_provider_with_its_own_sampler_keeps_the_sdks_tracer():
    class Mine(sampling.Sampler):
        def should_sample(self, *args, **kwargs):
            return sampling.SamplingResult(sampling.Decision.RECORD_AND_SAMPLE)

        def get_description(self) -> str:
            return "Mine"

    made, _ = provider(sampler=Mine())
    assert not isinstance(fastspan.ServerSpanProvider(made).get_tracer("t"), fastspan.ServerSpanTracer)
