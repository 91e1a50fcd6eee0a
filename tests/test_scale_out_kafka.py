"""Scale out through Kafka: the example app -> an agent Collector -> a real Kafka broker -> Jaeger.

    ./scripts/test tests/test_scale_out_kafka.py

The path a team takes when it outgrows one machine (docs/deployment.md): the example app under
gunicorn with two workers sends OTLP/HTTP to the agent (the Jaeger v2 binary running the shipped
``deploy/collector-agent.yaml``), which produces to a real Kafka broker (Apache Kafka's own
server, one KRaft node on loopback: ``tests/e2e/kafka.py``), from which the ingester (the Jaeger
v2 binary running ``deploy/jaeger-ingester.yaml``) consumes, tail-samples and stores; the tests
read what arrived through the ingester's query API only. Three runs, each with its own stack:
the tour as it is; the tour with Kafka stopped for ten seconds in its middle, while requests go on;
and the tour with the tail sampler keeping only what it must (errors and auth failures).

Skipped, saying why, where the Jaeger binary, Java or Kafka's jars are missing (``./scripts/test``
builds and installs them: ``scripts/build-jaeger``, ``scripts/install-kafka``).
"""

from __future__ import annotations

import http.cookiejar
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .e2e.kafka import ScaleStack, find_kafka
from .e2e.stack import NoRedirect, find_jaeger, stopped_after
from .test_end_to_end_jaeger import (TOUR, Sent, events, events_named, hex_id, one_request_per_worker,
                                     request_ids, send, server_span, tags, wait_for_traces)

OUTAGE_SECONDS = 10.0
OUTAGE_INTERVAL = 0.25  # one request every quarter second while Kafka is away
SLOW_REQUEST = 1.0  # seconds: no request of the app may take this long, outage or not
ARRIVAL_TIMEOUT = 120.0  # seconds for the spans held by the agent to reach the ingester
#: What the ingester's tail sampler keeps at SIGOBS_TAIL_SAMPLE_PERCENT=0: errors and auth failures.
MUST_KEEP = ("a failed login (template and flash)", "a route that raises", "access denied to a non-admin")


@pytest.fixture(scope="module")
def parts() -> tuple[str, Path]:
    jaeger, why_not = find_jaeger()
    if jaeger is None:
        pytest.skip(why_not)
    kafka_home, why_not = find_kafka()
    if kafka_home is None:
        pytest.skip(why_not)
    return jaeger, kafka_home


@dataclass
class Timed:
    sent: Sent
    seconds: float


@dataclass
class Run:
    stack: ScaleStack
    tour: list[Sent]
    per_worker: list[Sent]
    during_outage: list[Timed]
    traces: list[dict[str, Any]]
    log_lines: list[dict[str, Any]]
    tour_seconds: list[float]

    @property
    def requests(self) -> list[Sent]:
        return [*self.tour, *self.per_worker, *(t.sent for t in self.during_outage)]


def timed_send(opener: urllib.request.OpenerDirector, base: str, title: str, method: str,
               path: str, **kwargs: Any) -> Timed:
    started = time.monotonic()
    sent = send(opener, base, title, method, path, **kwargs)
    return Timed(sent, time.monotonic() - started)


def run_stack(parts: tuple[str, Path], workdir: Path, *, outage: bool, sample_percent: int) -> Run:
    jaeger, kafka_home = parts
    since_us = int(time.time() * 1e6) - 60_000_000
    stack = ScaleStack(jaeger, workdir, kafka_home=kafka_home, sample_percent=sample_percent)
    with stopped_after(stack, "the scale-out stack"):
        stack.start_kafka()
        stack.start_jaeger()  # the ingester
        stack.start_collector()  # the agent
        stack.start_app()
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
        tour: list[Timed] = []
        during: list[Timed] = []
        half = len(TOUR) // 2
        for index, step in enumerate(TOUR):
            if outage and index == half:
                assert stack.kafka is not None
                stack.kafka.stop()
                ends = time.monotonic() + OUTAGE_SECONDS
                while time.monotonic() < ends:
                    during.append(timed_send(urllib.request.build_opener(NoRedirect), stack.app_url,
                                             f"during the outage {len(during)}", "GET",
                                             f"/api/items/{len(during) % 3 + 1}"))
                    time.sleep(OUTAGE_INTERVAL)
                stack.kafka.start()
            tour.append(timed_send(opener, stack.app_url, step.title, step.method, step.path,
                                   form=step.form, headers=step.headers))
        extra = one_request_per_worker(stack)
        sent = [*(t.sent for t in tour), *extra, *(t.sent for t in during)]
        # All of them, or (sampling) those the sampler must keep; then what is there, well past
        # the sampler's decision wait, so that what it dropped has had time not to arrive.
        wanted = sent if sample_percent >= 100 else [t.sent for t in tour if t.sent.title in MUST_KEEP]
        traces = wait_for_traces(stack, wanted, since_us, timeout=ARRIVAL_TIMEOUT)
        if sample_percent < 100:
            time.sleep(3)
            traces = stack.query.search("sigobs-example", since_us)
        gunicorn = next(p for p in stack.processes if p.name == "gunicorn")
        gunicorn.stop()
        return Run(stack, [t.sent for t in tour], extra, during, traces, stack.log_lines(),
                   [t.seconds for t in tour])


@pytest.fixture(scope="module")
def through_kafka(parts: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_stack(parts, tmp_path_factory.mktemp("kafka-tour"), outage=False, sample_percent=100)


@pytest.fixture(scope="module")
def kafka_outage(parts: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_stack(parts, tmp_path_factory.mktemp("kafka-outage"), outage=True, sample_percent=100)


@pytest.fixture(scope="module")
def sampled(parts: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_stack(parts, tmp_path_factory.mktemp("kafka-sampled"), outage=False, sample_percent=0)


def missing_traces(run: Run, requests: list[Sent]) -> list[str]:
    arrived = set().union(*(request_ids(trace) for trace in run.traces)) if run.traces else set()
    return [f"{s.title}: {s.method} {s.path}" for s in requests if s.request_id not in arrived]


def check_every_access_line_has_its_trace_with_its_events(run: Run) -> None:
    access = [line for line in run.log_lines if line.get("event") == "flask.request_finished"]
    assert len(access) == len(run.requests), "one access line per request"
    by_trace = {hex_id(trace["traceID"], 32): trace for trace in run.traces}
    steps = {sent.request_id: step for sent, step in zip(run.tour, TOUR)}
    for line in access:
        trace = by_trace.get(line["trace_id"])
        assert trace is not None, f"the trace of {line} is not in the ingester\n{run.stack.outputs()}"
        span = server_span(trace)
        assert hex_id(span["spanID"], 16) == line["span_id"]
        assert request_ids(trace) == {line["request.id"]}
        names = [event["event"] for event in events(span)]
        assert names.count("flask.request_started") == 1 and names.count("flask.request_finished") == 1
        step = steps.get(line["request.id"])
        for name, expected in (step.events if step else {}).items():
            (event,) = events_named(span, name)
            for key, value in expected.items():
                assert event.get(key) == value, f"{step.title}: {name}[{key!r}] = {event.get(key)!r}"


# -- the tour through Kafka -----------------------------------------------------------------

def test_every_request_of_the_tour_reaches_the_ingester_through_kafka(through_kafka: Run):
    assert [s.status for s in through_kafka.tour] == [step.status for step in TOUR]
    missing = missing_traces(through_kafka, through_kafka.requests)
    assert not missing, f"not in the ingester: {missing}\n{through_kafka.stack.outputs()}"


def test_every_access_line_leads_to_its_trace_and_its_events_through_kafka(through_kafka: Run):
    check_every_access_line_has_its_trace_with_its_events(through_kafka)


def test_both_workers_spans_go_through_kafka(through_kafka: Run):
    served = through_kafka.stack.worker_of_request()
    pids = {served.get(s.request_id) for s in through_kafka.per_worker}
    assert None not in pids and len(pids) == through_kafka.stack.workers
    assert not missing_traces(through_kafka, through_kafka.per_worker)


def test_the_error_trace_keeps_its_status_through_kafka(through_kafka: Run):
    failing = next(s for s in through_kafka.tour if s.status == 500)
    trace = next(t for t in through_kafka.traces if failing.request_id in request_ids(t))
    assert tags(server_span(trace)).get("otel.status_code") == "ERROR"


# -- Kafka away for ten seconds --------------------------------------------------------------

def test_requests_during_the_outage_are_unaffected(kafka_outage: Run):
    during = kafka_outage.during_outage
    assert len(during) >= OUTAGE_SECONDS / (OUTAGE_INTERVAL + SLOW_REQUEST), "requests went on"
    assert [t.sent.status for t in during] == [200] * len(during)
    slowest = max(t.seconds for t in during)
    assert slowest < SLOW_REQUEST, f"a request took {slowest:.2f}s while Kafka was away"
    assert [s.status for s in kafka_outage.tour] == [step.status for step in TOUR]
    assert max(kafka_outage.tour_seconds) < SLOW_REQUEST


def test_the_spans_of_the_outage_arrive_once_kafka_is_back(kafka_outage: Run):
    during = [t.sent for t in kafka_outage.during_outage]
    missing = missing_traces(kafka_outage, during)
    assert not missing, (f"{len(missing)} of the {len(during)} requests served while Kafka was away "
                         f"have no trace: {missing}\n{kafka_outage.stack.outputs()}")
    assert not missing_traces(kafka_outage, kafka_outage.requests)


def test_after_the_outage_every_access_line_still_leads_to_its_trace(kafka_outage: Run):
    check_every_access_line_has_its_trace_with_its_events(kafka_outage)


# -- the tail sampler ----------------------------------------------------------------------------

def test_the_sampler_keeps_every_error_and_every_auth_failure_and_drops_the_rest(sampled: Run):
    kept = set().union(*(request_ids(trace) for trace in sampled.traces)) if sampled.traces else set()
    must_keep = [sent for sent in sampled.tour if sent.title in MUST_KEEP]
    assert len(must_keep) == len(MUST_KEEP)
    assert all(s.request_id in kept for s in must_keep), (kept, sampled.stack.outputs())
    dropped = [s for s in sampled.requests if s not in must_keep]
    assert not [s.title for s in dropped if s.request_id in kept], "SIGOBS_TAIL_SAMPLE_PERCENT=0 keeps no other"

