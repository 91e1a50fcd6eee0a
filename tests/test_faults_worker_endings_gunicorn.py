"""gunicorn's own ways of ending a worker, and ``os.fork`` children: no line written before is lost.

Lines are held back here (``SIGOBS_LOG_FLUSH_INTERVAL=30``) so that only the worker's exit can
write them, and spans go to a collector that never answers, so that the ``TracerProvider``'s
shutdown at exit waits for its export timeout (10 s). gunicorn does not wait that long: after
SIGTERM it kills the worker at ``--graceful-timeout``, after a worker timeout's SIGABRT within a
second or so. So the lines must be written first at exit, before the exporter's shutdown.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from .crash_support import call, kill_group, worker_logs
from .reliability import figure
from .servers import REPO, BlackHole, gunicorn, http_get, json_lines, server_env


def held_back_env(log, collector) -> dict[str, str]:
    return server_env(SIGOBS_LOG_FILE=str(log), SIGOBS_LOG_FLUSH_INTERVAL="30", OTEL_TRACES_EXPORTER="otlp",
                      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector.endpoint, OTEL_EXPORTER_OTLP_TIMEOUT="10",
                      OTEL_BSP_SCHEDULE_DELAY="60000")  # every span is still waiting at exit


def serve_work(server, prefix: str, count: int) -> list:
    served = [call(server, "/work", f"{prefix}-{index:03d}") for index in range(count)]
    assert server.process.poll() is None
    return served


def lines_of(log, served) -> tuple[int, int]:
    logs = worker_logs(log, served)
    return sum(len(w.present) for w in logs.values()), sum(len(w.expected) for w in logs.values())


def test_sigterm_writes_the_lines_before_a_slow_exporter_shutdown(tmp_path):
    log = tmp_path / "app.log"
    with BlackHole() as collector, gunicorn(tmp_path, held_back_env(log, collector), workers=2,
                                            args=("--graceful-timeout", "3"), app="tests.login_app:app") as server:
        served = serve_work(server, "term", 60)
        assert lines_of(log, served)[0] == 0, "lines were not held back: the test would prove nothing"
        stopping = time.monotonic()
        server.terminate()
        took = time.monotonic() - stopping
    present, expected = lines_of(log, served)
    figure(f"SIGTERM, graceful timeout 3 s, a collector that never answers: {present} of {expected} lines "
           f"written; the server took {took:.1f} s to stop")
    assert present == expected


def test_worker_timeout_sigabrt_writes_the_lines_before_the_sigkill_that_follows(tmp_path):
    log = tmp_path / "app.log"
    with BlackHole() as collector, gunicorn(tmp_path, held_back_env(log, collector), workers=1,
                                            args=("--timeout", "2"), app="tests.login_app:app") as server:
        served = serve_work(server, "abort", 30)
        hung = threading.Thread(target=lambda: _ignore_errors(http_get, f"{server.base}/hang",
                                                                headers={"X-Request-ID": "abort-hang"}, timeout=30))
        hung.start()
        deadline = time.monotonic() + 20
        while len(server.worker_pids()) < 2 and time.monotonic() < deadline:  # the timed-out worker replaced
            time.sleep(0.1)
        stderr = server.stderr()
        hung.join(30)
    assert "WORKER TIMEOUT" in stderr and len(server.worker_pids()) >= 2, stderr
    present, expected = lines_of(log, served)
    hang = [line for line in json_lines(log.read_bytes()) if line.get("request.id") == "abort-hang"]
    figure(f"worker timeout (SIGABRT, then SIGKILL), a collector that never answers: {present} of {expected} "
           f"lines of the requests before written, and {len(hang)} of the hung one's")
    assert present == expected
    assert [line["event"] for line in hang][:1] == ["hang.start"]


def test_max_requests_recycling_writes_the_lines_as_the_worker_leaves(tmp_path):
    log = tmp_path / "app.log"
    with BlackHole() as collector, gunicorn(tmp_path, held_back_env(log, collector), workers=1,
                                            args=("--max-requests", "20", "--max-requests-jitter", "0"),
                                            app="tests.login_app:app") as server:
        served = []
        while "Worker exiting" not in server.stderr():  # the helper's own /health counts too
            assert len(served) < 20
            served.append(call(server, "/work", f"recycle-{len(served):03d}"))
            last = time.monotonic()
            time.sleep(0.2)
        while lines_of(log, served)[0] < 2 * len(served) and time.monotonic() - last < 15:
            time.sleep(0.05)
        took = time.monotonic() - last
        deadline = time.monotonic() + 20
        while len(server.worker_pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(server.worker_pids()) == 2, "the worker was not recycled"
    present, expected = lines_of(log, served)
    figure(f"max_requests recycling, a collector that never answers: {present} of {expected} lines written "
           f"{took:.2f} s after the last answer")
    assert present == expected
    assert took < 3, f"the lines waited {took:.1f} s, behind the exporter's shutdown"


def test_a_forked_child_writes_its_warning_before_leaving_through_os_exit(tmp_path):
    """A child forked by a request (as multiprocessing's fork start method does) leaves through
    ``os._exit``, which runs no exit handler: its warning is written at once. The parent's line
    from before the fork is in the file once, not also in the child's copy of the buffer."""
    log = tmp_path / "app.log"
    with gunicorn(tmp_path, server_env(SIGOBS_LOG_FILE=str(log)), workers=1, app="tests.login_app:app") as server:
        for index in range(5):
            status, _, _ = http_get(f"{server.base}/fork", headers={"X-Request-ID": f"fork-{index}"})
            assert status == 200
        kill_group(server)
    events = [(line.get("request.id"), line["event"]) for line in json_lines(log.read_bytes())]
    figure(f"os.fork children under gunicorn, then SIGKILL: {sum(e == 'fork.child' for _, e in events)} of 5 "
           f"child warnings and {sum(e == 'fork.parent' for _, e in events)} of 5 parent lines")
    for index in range(5):
        assert events.count((f"fork-{index}", "fork.parent")) == 1
        assert events.count((f"fork-{index}", "fork.child")) == 1


FORK_RACE = r"""
import os, sys, time
from flask_sigobs.logsink import LineWriter

holder = []
# Hooks registered earlier run later before a fork: this one adds a line after the writer's flush,
# as another thread of the process could between that flush and the fork.
os.register_at_fork(before=lambda: holder and holder[0].write_line(b'{"event": "late"}'))
writer = LineWriter(sys.argv[1], flush_interval=0.05)
holder.append(writer)
writer.write_line(b'{"event": "early"}')
child = os.fork()
if child == 0:
    time.sleep(0.3)  # the child's flush thread runs several times
    writer.write_line(b'{"event": "child"}')
    writer.flush()
    os._exit(0)
os.waitpid(child, 0)
writer.flush()
"""


def test_a_fork_neither_loses_nor_doubles_the_lines_that_wait(tmp_path):
    log = tmp_path / "app.log"
    subprocess.run([sys.executable, "-c", FORK_RACE, str(log)], cwd=REPO, check=True, timeout=30)
    events = sorted(line["event"] for line in json_lines(log.read_bytes()))
    assert events == ["child", "early", "late"]


def _ignore_errors(function, *args, **kwargs) -> None:
    try:
        function(*args, **kwargs)
    except Exception:  # the connection of a request whose worker was killed: reset, or cut short
        pass
