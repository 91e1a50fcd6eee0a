"""The stdlib log lines flask-sigobs captures into its JSON output (SIGOBS_CAPTURE_LOGGING, on by
default when the root logger has no handler) must be as bounded and as redacted as its events.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time


from .servers import REPO, free_port, gunicorn, http_get, json_lines, server_env


def test_the_dev_servers_request_line_carries_no_secret(tmp_path):
    log, port = tmp_path / "dev.log", free_port()
    program = textwrap.dedent(f"""
        from flask import Flask
        from flask_sigobs import SigObs
        app = Flask("dev")
        app.config.update(SIGOBS_LOG_FILE={str(log)!r})
        app.route("/login")(lambda: "ok")
        SigObs(app)
        app.run(host="127.0.0.1", port={port})
    """)
    process = subprocess.Popen([sys.executable, "-c", program], cwd=REPO, env=server_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, _, _ = http_get(f"http://127.0.0.1:{port}/login?access_token=Zq-dev-secret-qZ", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "the dev server did not start"
                time.sleep(0.1)
        while b'"werkzeug"' not in (log.read_bytes() if log.exists() else b"") and time.monotonic() < deadline:
            time.sleep(0.05)  # lines are written together, SIGOBS_LOG_FLUSH_INTERVAL after they are made
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    assert status == 200
    lines = json_lines(log.read_bytes())
    assert any(line.get("logger") == "werkzeug" for line in lines), "the request line was captured"
    assert b"Zq-dev-secret-qZ" not in log.read_bytes()


def test_flasks_own_exception_line_is_bounded(tmp_path):
    log = tmp_path / "app.log"
    with gunicorn(tmp_path, server_env(SIGOBS_LOG_FILE=str(log)), workers=1) as server:
        assert http_get(f"{server.base}/raise-huge")[0] == 500
        assert server.terminate() == 0
    lines = json_lines(log.read_bytes())
    ours = [line for line in lines if line.get("event") == "flask.got_request_exception"]
    assert ours and len(ours[0]["exception.message"]) < 1100  # our own event is bounded
    assert max(len(raw) for raw in log.read_bytes().splitlines()) < 64_000
