"""Under load, one access line per request: every line valid JSON, none interleaved with another,
each with its own trace id, the one of its request's span.

Lines are made longer than a pipe buffer (a 6 kB user agent) so that a line written in more
than one piece, or two writers mixing their bytes, would show.
"""

from __future__ import annotations

from collections import Counter

import pytest

from flask import Flask, current_app

from flask_sigobs import auth

from .reliability import figure, hammer
from .servers import OtlpSink, gunicorn, json_lines, server_env

pytestmark = pytest.mark.slow  # load: the whole suite's, not the matrix rows' core

REQUESTS = 2000
AGENT = "load-test/" + "a" * 6000


def check_lines(raw: bytes, sent: dict[str, int]) -> tuple[list[dict], dict[str, dict]]:
    lines = json_lines(raw)  # each line one JSON object: interleaved bytes would not parse
    access_lines = [line for line in lines if line.get("event") == "flask.request_finished"]
    counts = Counter(line["request.id"] for line in access_lines)
    assert set(counts) == set(sent), "an access line per request, and no other"
    assert max(counts.values()) == 1, counts.most_common(3)
    trace_ids = Counter(line["trace_id"] for line in access_lines)
    assert max(trace_ids.values()) == 1, trace_ids.most_common(3)
    assert all(line["user_agent.original"] == AGENT for line in access_lines)
    access = {line["request.id"]: line for line in access_lines}
    for line in lines:  # every line of a request carries that request's ids: nothing mixed up
        if line.get("request.id") in access:
            assert line["trace_id"] == access[line["request.id"]]["trace_id"], line
    return lines, access


def test_threads_one_line_per_request(observe):
    app = Flask("load_threads")

    @app.route("/pid")
    def pid():
        auth.login_succeeded.send(current_app._get_current_object(), user="load")
        return "0"

    observed = observe(app, SIGOBS_LOG_LEVEL="debug", SIGOBS_MAX_VALUE_LENGTH=8000)
    with observed.serve() as base:
        run = hammer(base, REQUESTS, threads=16, prefix="thread", headers={"User-Agent": AGENT})
    assert run.statuses == [200] * REQUESTS
    lines, access = check_lines(observed.raw_log(), run.sent)
    spans = {span.context.trace_id: span for span in observed.server_spans()}
    assert len(spans) == REQUESTS
    for request_id, line in access.items():
        span = spans[int(line["trace_id"], 16)]
        assert format(span.context.span_id, "016x") == line["span_id"]
        finished = next(e for e in span.events if e.name == "flask.request_finished")
        assert finished.attributes["request.id"] == request_id
    figure(f"load, threaded server ({observed.app.config['SIGOBS_SPAN_SOURCE']} span source, 16 client threads): "
           f"{REQUESTS} requests in {run.seconds:.1f} s, "
           f"{len(lines)} lines of up to {max(map(len, observed.raw_log().splitlines()))} bytes, "
           f"{len(access)} access lines, 0 lost, 0 interleaved, {len(spans)} spans matched")


@pytest.mark.parametrize("flush_interval", ["0", "0.2"], ids=["line-by-line", "lines-gathered-0.2s"])
def test_gunicorn_workers_share_one_file_one_line_per_request(tmp_path, flush_interval):
    log = tmp_path / "shared.log"
    with OtlpSink() as sink:
        env = server_env(SIGOBS_LOG_FILE=str(log), SIGOBS_LOG_LEVEL="debug", SIGOBS_MAX_VALUE_LENGTH="8000",
                         SIGOBS_LOG_FLUSH_INTERVAL=flush_interval,
                         OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=sink.endpoint)
        with gunicorn(tmp_path, env, workers=3) as server:
            run = hammer(server.base, REQUESTS, threads=12, prefix="worker", path="/pid?sleep=0.001",
                         headers={"User-Agent": AGENT})
            assert server.terminate() == 0
            workers = server.worker_pids()
        spans = sink.server_spans()
    assert run.statuses == [200] * REQUESTS
    assert set(run.sent.values()) == set(workers), "every worker wrote to the one file"
    lines, access = check_lines(log.read_bytes(), run.sent)
    by_trace = {span.trace_id: span for span in spans}
    assert len(by_trace) == len(spans) == REQUESTS
    for request_id, line in access.items():
        span = by_trace[line["trace_id"]]
        assert span.span_id == line["span_id"]
        assert dict(span.events)["flask.request_finished"]["request.id"] == request_id
    per_worker = Counter(run.sent.values())
    figure(f"load, gunicorn ({len(workers)} sync workers appending to one file, "
           f"SIGOBS_LOG_FLUSH_INTERVAL={flush_interval}, 12 client threads): "
           f"{REQUESTS} requests in {run.seconds:.1f} s (per worker {sorted(per_worker.values())}), "
           f"{len(lines)} lines, {len(access)} access lines, 0 lost, 0 interleaved, "
           f"{len(spans)} spans received and matched")
