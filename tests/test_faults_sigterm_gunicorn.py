"""Stopped by SIGTERM under gunicorn: the spans and log lines of finished requests all arrive.

The export schedule is set to a minute, so nothing leaves before the signal: every span the
collector receives was flushed by the worker's exit (the ``TracerProvider``'s ``atexit``
shutdown, which gunicorn's workers run as they leave through ``sys.exit``). With ``--preload``
the provider and its export thread are created in the master and forked into the workers.
"""

from __future__ import annotations

import pytest

from .reliability import figure, hammer
from .servers import OtlpSink, gunicorn, json_lines, server_env

REQUESTS = 300


@pytest.mark.parametrize("preload, threads, flush_interval", [(False, 0, "0"), (True, 0, "0"), (False, 4, "0"),
                                                              (False, 0, "30")],
                         ids=["sync", "sync-preload", "gthread", "sync-lines-written-every-30s"])
def test_sigterm_flushes_every_finished_request(tmp_path, preload, threads, flush_interval):
    log = tmp_path / "app.log"
    with OtlpSink() as sink:
        env = server_env(SIGOBS_LOG_FILE=str(log), SIGOBS_LOG_FLUSH_INTERVAL=flush_interval, OTEL_TRACES_EXPORTER="otlp",
                         OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=sink.endpoint,
                         OTEL_BSP_SCHEDULE_DELAY="60000",  # nothing is exported before the signal
                         OTEL_BSP_MAX_QUEUE_SIZE="4096", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4096")
        args = ("--preload",) if preload else ()
        if threads:
            args += ("--worker-class", "gthread", "--threads", str(threads))
        with gunicorn(tmp_path, env, workers=2, args=args) as server:
            run = hammer(server.base, REQUESTS, threads=4, prefix="term", path="/pid?sleep=0.002")
            assert sink.requests == 0, "spans left before SIGTERM: the test would prove nothing"
            if flush_interval != "0":
                assert len(log.read_bytes().splitlines()) < REQUESTS, "lines were not held back"
            exit_status = server.terminate()
            workers = server.worker_pids()
        spans = sink.server_spans()
    lines = json_lines(log.read_bytes())
    access = {line["request.id"]: line for line in lines if line.get("event") == "flask.request_finished"}
    by_request = {}
    for span in spans:
        for name, attributes in span.events:
            if name == "flask.request_finished":
                by_request[attributes["request.id"]] = span
    kind = "gthread" if threads else "sync --preload" if preload else "sync"
    if flush_interval != "0":
        kind += f", SIGOBS_LOG_FLUSH_INTERVAL={flush_interval}"
    figure(f"SIGTERM under gunicorn ({kind}, 2 workers): "
           f"{REQUESTS} requests served, {len(access)} access lines and {len(by_request)} spans after exit")
    assert exit_status == 0
    assert run.statuses == [200] * REQUESTS
    assert set(run.sent.values()) == set(workers), "both workers served requests"
    assert set(access) == set(run.sent) and len(access) == REQUESTS
    assert set(by_request) == set(run.sent) and len(spans) == REQUESTS
    for request_id, span in by_request.items():
        assert access[request_id]["trace_id"] == span.trace_id
        assert access[request_id]["span_id"] == span.span_id
