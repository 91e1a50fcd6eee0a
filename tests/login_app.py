"""The app the crash tests serve (``gunicorn tests.login_app:app``): a login route and its kin.

Every answer is the pid of the worker that served it and the request's number in that worker,
so a test knows which worker wrote which lines and in what order (a sync worker serves one
request at a time). Each route says what it
logs, in order; the app's own line goes through structlog, as an app's would.
"""

from __future__ import annotations

import itertools
import os
import time

import structlog
from flask import Flask, current_app, request

from flask_sigobs import SigObs, auth

log = structlog.get_logger()
_served = itertools.count()


def who() -> str:
    return f"{os.getpid()} {next(_served)}"


def create_app() -> Flask:
    app = Flask("login")

    @app.route("/health")
    def health():
        return "ok"

    @app.route("/login", methods=["POST"])
    def login():
        """``login.attempt`` (info), ``auth.login_failed`` (warning), the access line (info): a 401."""
        user = request.form.get("username", "")
        log.info("login.attempt", user=user)
        auth.login_failed.send(current_app._get_current_object(), user=user, reason="bad password")
        time.sleep(min(float(request.args.get("sleep", 0)), 1.0))  # lets the other worker take some
        return who(), 401

    @app.route("/login-ok", methods=["POST"])
    def login_ok():
        """``auth.login_succeeded`` (info, but an authentication event), the access line."""
        auth.login_succeeded.send(current_app._get_current_object(), user=request.form.get("username", ""))
        return who()

    @app.route("/work")
    def work():
        """``work.done`` (info), the access line: lines that may wait."""
        log.info("work.done")
        return who()

    @app.route("/hang")
    def hang():
        """``hang.start`` (info), then longer than any worker timeout."""
        log.info("hang.start")
        time.sleep(float(request.args.get("seconds", 120)))
        return who()

    @app.route("/fork")
    def fork():
        """``fork.parent`` (info), then a child (forked as multiprocessing's fork does) writes
        ``fork.child`` (warning) and leaves through ``os._exit``, which runs no exit handler."""
        log.info("fork.parent")
        child = os.fork()
        if child == 0:
            try:
                log.warning("fork.child", pid=os.getpid())
            finally:
                os._exit(0)
        os.waitpid(child, 0)
        return who()

    SigObs(app)
    return app


app = create_app()
