"""A scripted tour of the example app: real requests to a real server, JSON lines on stdout.

    python examples/tour.py            # what the README's first set-up command runs

Each step is announced on standard error, so standard output holds only the JSON log lines
(pipe it to ``jq`` or ``sigobs tail``). Set ``OTEL_EXPORTER_OTLP_ENDPOINT`` to send the spans
to a Collector as well. The tour ends with ``sigobs audit list`` and ``sigobs audit stats`` of the
audit trail it just wrote (on standard error; a fresh trail in a temporary directory unless
``SIGOBS_AUDIT_URL`` is set).
"""

from __future__ import annotations

import http.cookiejar
import logging
import os
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if "SIGOBS_AUDIT_URL" not in os.environ:  # this tour's own trail, so the list below is of this tour
    _trail = tempfile.mkdtemp(prefix="sigobs-tour-")
    os.environ["SIGOBS_AUDIT_URL"] = "sqlite:///" + os.path.join(_trail, "audit.db")
    os.environ.setdefault("SIGOBS_AUDIT_JOURNAL", os.path.join(_trail, "journal"))

from werkzeug.serving import make_server  # noqa: E402

from examples.app import app, sigobs  # noqa: E402
from flask_sigobs.cli import main as sigobs_command  # noqa: E402

STEPS = [
    ("a page with a template", "GET", "/", None),
    ("a failed login", "POST", "/login", {"username": "alice", "password": "guess123"}),
    ("a successful login (flash, redirect)", "POST", "/login", {"username": "alice", "password": "wonderland"}),
    ("an API call that sends a custom signal", "GET", "/api/items/2", None),
    ("access denied to a non-admin", "GET", "/admin", None),
    ("a route that raises", "GET", "/api/reports/2026", None),
    ("logout", "POST", "/logout", None),
]


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the server's own access log
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    try:
        for title, method, path, form in STEPS:
            data = urllib.parse.urlencode(form).encode() if form else (b"" if method == "POST" else None)
            request = urllib.request.Request(base + path, data=data, method=method,
                                             headers={"User-Agent": "sigobs-tour/1.0"})
            try:
                status = opener.open(request, timeout=10).status
            except urllib.error.HTTPError as error:
                status = error.code
            sys.stdout.flush()
            print(f"# tour: {title}: {method} {path} -> {status}", file=sys.stderr, flush=True)
    finally:
        server.shutdown()
    sigobs.flush(app)  # the audit rows into the database now, not at the next flush interval
    sys.stdout.flush()
    for command in (["audit", "list"], ["audit", "stats", "--top", "5"]):
        print(f"# tour: sigobs {' '.join(command)}", file=sys.stderr, flush=True)
        stdout, sys.stdout = sys.stdout, sys.stderr  # the JSON lines alone on standard output
        try:
            sigobs_command(command)
        finally:
            sys.stdout = stdout
    return 0


if __name__ == "__main__":
    sys.exit(main())
