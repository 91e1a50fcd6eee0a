"""A collector that refuses, never answers or is slow costs the requests nothing, and no span
goes missing without being counted and reported.

The app runs under gunicorn and exports to real sockets on loopback: a working OTLP/HTTP
receiver, a reserved port nobody listens on, a listening socket that never answers, and a
receiver that answers each export after half a second.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
import tracemalloc

import pytest
import requests
from flask import Flask, current_app
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from flask_sigobs import auth
from flask_sigobs.config import ConfigError
from flask_sigobs.otel_setup import MAX_EXPORT_TIMEOUT, export_timeout, otlp_exporter
from flask_sigobs.spanqueue import ExportQueue

from .reliability import (ABANDON_REPORT, DROP_REPORT, FAIL_REPORT, QUEUE_SIZE, SLOW_DELAY, broken_collectors,
                          figure)
from .servers import BlackHole, OtlpSink, http_get, refused_endpoint

RATIO = 1.5


@pytest.mark.slow  # about 16 s of gunicorn under a broken collector
def test_a_broken_collector_costs_requests_nothing_and_every_span_is_accounted_for(tmp_path):
    runs = broken_collectors(tmp_path, rounds=2000)
    working = runs["working"]
    for kind, run in runs.items():
        ratio = run.p(0.99) / working.p(0.99)
        final = run.stats[-1]
        figure(f"collector {kind}: {run.requests} requests, all 200: {set(run.statuses) == {200}}; "
               f"latency p50 {run.p(0.5) * 1000:.2f} ms, p99 {run.p(0.99) * 1000:.2f} ms "
               f"(x{ratio:.2f} the working collector's); RSS {run.stats[0]['rss_kb'] / 1024:.1f} -> "
               f"{final['rss_kb'] / 1024:.1f} MiB; spans exported {final['exported']}, dropped "
               f"{final['dropped']}, failed {final['failed']}; SIGTERM to exit {run.exit_seconds:.1f} s")
    for kind, run in runs.items():
        # Every request succeeded, and was logged: one access line each.
        assert set(run.statuses) == {200}, kind
        assert len(run.access_lines()) == run.requests, kind
        # p99 latency within 1.5x of the working collector's.
        assert run.p(0.99) <= RATIO * working.p(0.99), (kind, run.p(0.99), working.p(0.99))
        # Memory is bounded: the queue never holds more than its size, whatever the collector does.
        assert all(stats["queued"] <= QUEUE_SIZE and stats["max_queue"] == [QUEUE_SIZE] for stats in run.stats)
        assert run.exit_status == 0, kind
        # Nothing lost silently: every span was exported, or counted as dropped (queue full),
        # failed (export refused or timed out) or abandoned (shutdown's time was up), and each
        # count was said on the flask_sigobs logger, once per interval (60 s) rather than per span.
        dropped, failed, abandoned = (sum(run.reports(p)) for p in (DROP_REPORT, FAIL_REPORT, ABANDON_REPORT))
        exported = len(run.delivered) if kind in ("working", "slow") else 0
        assert exported + dropped + failed + abandoned == run.requests, (kind, exported, dropped, failed, abandoned)
        assert len(run.reports(DROP_REPORT)) <= 2 and len(run.reports(FAIL_REPORT)) <= 2, kind
        assert dropped >= run.stats[-1]["dropped"] and failed >= run.stats[-1]["failed"], kind
    assert len(working.delivered) == working.requests  # a working collector gets every span
    assert {line["trace_id"] for line in working.access_lines()} == {span.trace_id for span in working.delivered}
    for kind in ("refused", "black hole"):
        assert runs[kind].stats[-1]["dropped"] > 0, f"the {kind} collector never filled the queue"
    # A stuck export delays shutdown by at most OTEL_BSP_EXPORT_TIMEOUT (2 s here) plus gunicorn's own.
    assert all(run.exit_seconds < 10 for run in runs.values())


def test_spans_beyond_the_queue_are_dropped_counted_and_reported_once_per_interval(caplog):
    """A real OTLP exporter against a black hole: 3000 spans into a queue of 64, in about 1.5 s."""
    with BlackHole() as hole:
        queue = ExportQueue(OTLPSpanExporter(endpoint=hole.endpoint, timeout=1), max_queue_size=64,
                            schedule_delay_millis=50, export_timeout_millis=500, report_interval=0.25)
        provider = TracerProvider(resource=Resource.create({"service.name": "drops"}), shutdown_on_exit=False)
        provider.add_span_processor(queue)
        tracer = provider.get_tracer("test")
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="flask_sigobs"):
            for index in range(3000):
                tracer.start_span(f"span {index}").end()
                if index % 100 == 99:
                    time.sleep(0.05)
            seconds = time.monotonic() - started
            assert queue.queued() <= 64
            provider.shutdown()
    reports = [r.getMessage() for r in caplog.records if r.name == "flask_sigobs" and "dropped" in r.getMessage()]
    counts = [int(DROP_REPORT.search(message).group(1)) for message in reports]
    figure(f"black hole, queue of 64: 3000 spans in {seconds:.1f} s, {queue.dropped} dropped, "
           f"reported in {len(reports)} lines")
    assert queue.dropped > 2000
    assert sum(counts) == queue.dropped  # every drop counted once, nothing reported twice
    assert 2 <= len(reports) <= seconds / 0.25 + 2  # once per interval, not once per span
    assert queue.exported + queue.dropped + queue.failed + queue.abandoned == 3000


RETAINED_BOUND = 1_000_000  # bytes: 1000 requests' spans of 16 kB each would keep 16 MB


def retained_since(before: int, settle: float = 3.0) -> int:
    """Traced memory still held since ``before``, once background threads had a moment to let go
    of what they were using (tracemalloc counts every thread's allocations, also those of another
    test's exporter finishing up): the least seen over ``settle`` seconds, after a collection."""
    least = None
    deadline = time.monotonic() + settle
    while True:
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        least = grown if least is None else min(least, grown)
        if least < RETAINED_BOUND or time.monotonic() > deadline:
            return least
        time.sleep(0.2)


@pytest.mark.slow  # a few seconds of requests against a black hole
@pytest.mark.parametrize("span_source", ["signals"])  # the queue is the same whatever made the span
def test_memory_stays_bounded_when_the_collector_never_answers(observe, monkeypatch):
    """1000 requests whose spans carry 16 kB each: 16 MB if the spans were kept; they are not."""
    with BlackHole() as hole:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", hole.endpoint)
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "30")
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")
        monkeypatch.setenv("OTEL_BSP_EXPORT_TIMEOUT", "500")
        app = Flask("bounded_memory")

        @app.route("/")
        def index():
            auth.login_failed.send(current_app._get_current_object(), user="u", note="n" * 16_000)
            return "ok"

        observed = observe(app, SIGOBS_SPAN_EXPORTER=None, SIGOBS_MAX_VALUE_LENGTH=16_000, SIGOBS_LOG_FILE=os.devnull)
        queue = observed.sigobs.runtime(app).tracer_provider._active_span_processor._span_processors[0]
        assert isinstance(queue, ExportQueue)
        # werkzeug logs each request, and pytest keeps every record in memory: not ours to count
        monkeypatch.setattr(logging.getLogger("werkzeug"), "level", logging.ERROR)
        with observed.serve() as base:
            for _ in range(200):  # the queue fills, the first export is stuck in the black hole
                assert http_get(f"{base}/")[0] == 200
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for _ in range(1000):
                    assert http_get(f"{base}/")[0] == 200
                grown = retained_since(before)
            finally:
                tracemalloc.stop()
        figure(f"black hole: 1000 requests with 16 kB spans grew traced memory by {grown / 1e6:.2f} MB "
               f"(queue of 100; {queue.dropped} spans dropped)")
        assert queue.queued() <= 100 and queue.dropped >= 1000
        assert grown < RETAINED_BOUND, grown


def test_the_export_timeout_is_bounded(monkeypatch):
    """A black-holed export gives up after the timeout; no setting makes the wait unbounded."""
    for raw, expected in (("", 10.0), ("2.5", 2.5), ("0", 10.0), ("-1", 10.0), ("inf", 10.0), ("nan", 10.0),
                          ("10000", MAX_EXPORT_TIMEOUT)):
        assert export_timeout({"OTEL_EXPORTER_OTLP_TIMEOUT": raw}) == expected, raw
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"):
        export_timeout({"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "ten"})
    with BlackHole() as hole:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", hole.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")
        exporter = otlp_exporter()
        provider = TracerProvider(shutdown_on_exit=False)
        span = provider.get_tracer("t").start_span("one")
        span.end()
        started = time.monotonic()
        try:
            result = exporter.export([span]).name
        except requests.exceptions.Timeout:  # SDK 1.35's exporter raises where newer ones return FAILURE
            result = "FAILURE"  # (the export queue counts either as a failed export: spanqueue._Accounting)
        waited = time.monotonic() - started
        exporter.shutdown()
    assert result == "FAILURE" and 0.9 < waited < 3, waited
    assert hole.accepted, "the exporter never reached the black hole"


def test_a_queue_smaller_than_a_batch_is_not_a_boot_failure(monkeypatch):
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")  # the default batch is 512
    with OtlpSink() as sink:
        queue = ExportQueue(OTLPSpanExporter(endpoint=sink.endpoint))
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(queue)
        for index in range(150):
            provider.get_tracer("t").start_span(f"s{index}").end()
            if index == 99:
                provider.force_flush()
        provider.shutdown()
        assert queue.max_queue_size == 100 and len(sink.spans) == 150


@pytest.mark.parametrize("span_source", ["signals"])
@pytest.mark.parametrize("kind", ["refused", "black hole", "slow"])
def test_every_request_succeeds_with_a_broken_collector_under_threads(observe, monkeypatch, kind):
    """The threaded server too: 8 clients at once, while the export thread is stuck or failing."""
    import contextlib
    from concurrent.futures import ThreadPoolExecutor

    with contextlib.ExitStack() as stack:
        endpoint = {"refused": lambda: stack.enter_context(refused_endpoint()),
                    "black hole": lambda: stack.enter_context(BlackHole()).endpoint,
                    "slow": lambda: stack.enter_context(OtlpSink(delay=SLOW_DELAY)).endpoint}[kind]()
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2")
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "64")
        monkeypatch.setenv("OTEL_BSP_EXPORT_TIMEOUT", "500")
        app = Flask(f"threads_{kind.replace(' ', '_')}")
        app.route("/")(lambda: "ok")
        observed = observe(app, SIGOBS_SPAN_EXPORTER=None)
        queue = observed.sigobs.runtime(app).tracer_provider._active_span_processor._span_processors[0]
        with observed.serve() as base:
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(lambda _: http_get(f"{base}/", timeout=5)[0], range(400)))
        observed.sigobs.runtime(app).tracer_provider.shutdown()
        assert statuses == [200] * 400
        assert len(observed.events("flask.request_finished")) == 400
        assert queue.exported + queue.dropped + queue.failed + queue.abandoned == 400
        assert threading.active_count() < 50
