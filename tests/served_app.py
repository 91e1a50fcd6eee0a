"""The app the gunicorn tests serve (``gunicorn tests.served_app:app``), configured by the environment.

``SIGOBS_*`` and ``OTEL_*`` variables set it up as any deployment would. Its routes are the
situations the reliability tests need: a plain page, one that says which worker served it, one
that reports the process's memory and span queue, one whose exception echoes a password, and one
that sends a signal with values a receiver cannot print.
"""

from __future__ import annotations

import os
import time

from blinker import Namespace
from flask import Flask, current_app, jsonify, request

from flask_sigobs import SigObs, auth, spanqueue

signals = Namespace()
hostile_signal = signals.signal("test.hostile_values")


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def create_app() -> Flask:
    app = Flask("served")
    app.config["SECRET_KEY"] = "served-app-not-a-secret"

    @app.route("/")
    def index():
        return "ok"

    @app.route("/health")
    def health():  # excluded by default: readiness probes write no line
        return "ok"

    @app.route("/pid")
    def pid():  # which worker served it; ?sleep= keeps a worker busy so that the others get work
        time.sleep(min(float(request.args.get("sleep", 0)), 1.0))
        return str(os.getpid())

    @app.route("/stats")
    def stats():
        return jsonify(pid=os.getpid(), rss_kb=rss_kb(), max_queue=[q.max_queue_size for q in spanqueue._QUEUES],
                       **spanqueue.accounts())

    @app.route("/login", methods=["POST"])
    def login():
        password = request.form.get("password", "")
        auth.login_failed.send(current_app._get_current_object(), user=request.form.get("username"),
                               password=password, details={"nested": {"api_key": request.args.get("api_key")}})
        raise ValueError(f"login failed: password {password!r} does not match, "
                         f"token {request.headers.get('Authorization')}, key {request.args.get('api_key')}")

    @app.route("/raise-huge")
    def raise_huge():
        raise ValueError("m" * 10_000_000)

    @app.route("/hostile")
    def hostile():
        recursive: list = [1]
        recursive.append(recursive)
        hostile_signal.send(current_app._get_current_object(), weird=Unprintable(), loop=recursive,
                            huge="x" * 10_000_000, raw=b"\xff\xfe\x00not utf-8 \xc3\x28")
        return "still fine"

    sigobs = SigObs(app)
    sigobs.observe(hostile_signal)
    return app


app = create_app()
