"""A log store or metrics endpoint that is down, refuses or fails costs the requests nothing, and
what was not delivered is counted and reported once, as for spans.

Real sockets on loopback: a reserved port nobody listens on, a listening socket that never
answers, and a receiver that takes traces and metrics but answers 404 on ``/v1/logs`` (a
Collector without a logs pipeline).
"""

from __future__ import annotations

import logging
import time

import pytest
from flask import Flask, current_app

from flask_sigobs import auth
from flask_sigobs.outputs import logrecord, metrics

from .servers import BlackHole, refused_endpoint
from .signal_servers import OtlpReceiver

pytestmark = pytest.mark.parametrize("span_source", ["signals"])


def make_app(name: str) -> Flask:
    app = Flask(name)

    @app.route("/")
    def index():
        auth.login_failed.send(current_app._get_current_object(), user="mallory", reason="bad password")
        return "ok"

    return app


def reports(caplog, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "flask_sigobs" and words in r.getMessage()]


def run_requests(observed, count: int) -> tuple[list[int], float]:
    client = observed.client()
    started = time.monotonic()
    statuses = [client.get("/").status_code for _ in range(count)]
    return statuses, (time.monotonic() - started) / count


def shut(observed) -> None:
    runtime = observed.sigobs.runtime(observed.app)
    if runtime.log_records is not None:
        runtime.log_records.provider.shutdown()
    if runtime.metrics is not None:
        runtime.metrics.shutdown()


@pytest.mark.parametrize("kind", ["refused", "404 on /v1/logs"])
def test_a_log_store_that_is_away_or_refuses_costs_nothing_and_is_reported_once(observe, monkeypatch, caplog, kind):
    import contextlib

    with contextlib.ExitStack() as stack:
        if kind == "refused":
            base = stack.enter_context(refused_endpoint()).rsplit("/v1/", 1)[0]
            receiver = None
        else:
            receiver = stack.enter_context(OtlpReceiver(refuse={"/v1/logs": 404}))
            base = receiver.base
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
        monkeypatch.setenv("OTEL_BLRP_SCHEDULE_DELAY", "50")
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "60000")
        observed = observe(make_app("away"), SIGOBS_LOGS_EXPORTER="otlp", SIGOBS_METRICS_EXPORTER="otlp")
        before = logrecord.accounts()
        with caplog.at_level(logging.WARNING, logger="flask_sigobs"):
            try:
                statuses, per_request = run_requests(observed, 200)
                observed.sigobs.flush(observed.app, timeout_millis=3000)
                time.sleep(0.3)
                observed.sigobs.flush(observed.app, timeout_millis=3000)
                after = logrecord.accounts()
                lines = observed.lines()
                points = receiver.points if receiver is not None else []
            finally:
                shut(observed)
    assert statuses == [200] * 200 and per_request < 0.05, per_request
    assert len([line for line in lines if line["event"] == "flask.request_finished"]) == 200  # the local record
    failed = after["failed"] - before["failed"]
    dropped = after["dropped"] - before["dropped"]
    assert failed + dropped > 0 and after["exported"] == before["exported"]
    said = reports(caplog, "log records")
    failures, drops = ([m for m in said if words in m] for words in ("could not export", "dropped"))
    assert said and len(failures) <= 2 and len(drops) <= 2, said  # the first at once, the rest with its count
    assert sum(int(message.split(" ")[4]) for message in failures) <= failed
    if receiver is not None:  # the other signals still arrive
        assert any(p.metric == "sigobs.auth.events" and p.value == 200 for p in points)


def test_a_black_holed_log_store_keeps_the_queue_bounded_and_counts_the_drops(observe, monkeypatch, caplog):
    with BlackHole() as hole:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", hole.endpoint.rsplit("/v1/", 1)[0])
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
        monkeypatch.setenv("OTEL_BLRP_MAX_QUEUE_SIZE", "20")
        monkeypatch.setenv("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "10")
        observed = observe(make_app("black_hole"), SIGOBS_LOGS_EXPORTER="otlp")
        queue = observed.sigobs.runtime(observed.app).log_records.provider._multi_log_record_processor \
            ._log_record_processors[0]
        with caplog.at_level(logging.WARNING, logger="flask_sigobs"):
            try:
                statuses, per_request = run_requests(observed, 300)
                queued = len(queue._batch_processor._queue)
            finally:
                shut(observed)
    assert statuses == [200] * 300 and per_request < 0.05
    assert queued <= 20 and queue.drops.total > 300  # two records a request, most of them dropped
    said = reports(caplog, "dropped")
    assert len(said) == 2 and said[0].startswith("flask-sigobs dropped 1 log records")  # at once, then at shutdown
    assert sum(int(message.split(" ")[2]) for message in said) == queue.drops.total


class FailingMetricExporter:
    """A MetricExporter whose every export raises."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics.export import AggregationTemporality

        self._preferred_temporality = {}
        self._preferred_aggregation = {}
        self.calls = 0
        self.temporality = AggregationTemporality.CUMULATIVE

    def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
        self.calls += 1
        raise ConnectionError("the metrics backend is gone")

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        pass

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True


def test_a_failing_metric_exporter_costs_nothing_and_is_reported_once(observe, caplog, monkeypatch):
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "50")
    exporter = FailingMetricExporter()
    observed = observe(make_app("failing_metrics"), SIGOBS_METRICS_EXPORTER=exporter)
    with caplog.at_level(logging.WARNING, logger="flask_sigobs"):
        try:
            statuses, _ = run_requests(observed, 100)
            time.sleep(0.5)
            output = observed.sigobs.runtime(observed.app).metrics
        finally:
            shut(observed)
    assert statuses == [200] * 100
    assert exporter.calls >= 3 and output.failures.total > 0
    assert len(reports(caplog, "metric data points")) <= 2  # once at first, once at shutdown with the rest
    assert metrics.accounts()["failed"] >= output.failures.total
