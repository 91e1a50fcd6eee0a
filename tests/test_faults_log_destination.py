"""The log destination is a full disk or a closed pipe: the requests still succeed (and the spans
still leave), under gunicorn as deployed."""

from __future__ import annotations

import os
import subprocess

from .reliability import figure, hammer
from .servers import OtlpSink, gunicorn, server_env

REQUESTS = 200


def _serve_with(tmp_path, sink, stdout=subprocess.DEVNULL, **env):
    environment = server_env(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=sink.endpoint,
                             OTEL_BSP_SCHEDULE_DELAY="100", **env)
    return gunicorn(tmp_path, environment, workers=2, stdout=stdout)


def test_a_full_disk_costs_no_request(tmp_path):
    with OtlpSink() as sink:
        with _serve_with(tmp_path, sink, SIGOBS_LOG_FILE="/dev/full") as server:  # every write: ENOSPC
            run = hammer(server.base, REQUESTS, threads=4, prefix="full", path="/")
            hostile = hammer(server.base, 20, threads=2, prefix="full-hostile", path="/hostile")
            assert server.terminate() == 0
        spans = sink.server_spans()
    figure(f"log file on a full disk (/dev/full): {REQUESTS + 20} requests, statuses {sorted(set(run.statuses))}, "
           f"{len(spans)} spans still exported")
    assert run.statuses == [200] * REQUESTS and hostile.statuses == [200] * 20
    assert len(spans) == REQUESTS + 20


def test_a_closed_pipe_costs_no_request(tmp_path):
    """Logging to standard output, a pipe whose reader has gone: every write fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        with OtlpSink() as sink:
            with _serve_with(tmp_path, sink, stdout=write_end) as server:
                run = hammer(server.base, REQUESTS, threads=4, prefix="pipe", path="/")
                hostile = hammer(server.base, 20, threads=2, prefix="pipe-hostile", path="/hostile")
                assert server.terminate() == 0
                errors = server.stderr()
            spans = sink.server_spans()
    finally:
        os.close(write_end)
    figure(f"log to a closed pipe: {REQUESTS + 20} requests, statuses {sorted(set(run.statuses))}, "
           f"{len(spans)} spans still exported")
    assert run.statuses == [200] * REQUESTS and hostile.statuses == [200] * 20
    assert len(spans) == REQUESTS + 20
    assert "Traceback" not in errors.split("Shutting down")[0], errors  # no worker crashed meanwhile
