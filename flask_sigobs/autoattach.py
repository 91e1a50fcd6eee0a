"""Attach flask-sigobs to every Flask app of the process, without touching the app's code.

:func:`install` plugs into ``flask.app.Flask.__call__`` (the WSGI entry point every server calls),
which :mod:`flask_sigobs.appcall` replaced at class level, so it holds for every app: created
before or after, by a factory or at import, of ``flask.Flask`` or of a subclass (such as the one
``opentelemetry-instrument``'s Flask instrumentation puts in place of ``flask.Flask``). A request
for an app not observed yet attaches it: on the app's *first request*, which gives three things
at once:

- configuration set on ``app.config`` after ``Flask()`` (by a factory, by ``from_object``) is
  seen, as if the app had called ``SigObs(app)`` at the end of its set-up;
- an app that calls ``SigObs(app)`` itself is already in ``app.extensions["sigobs"]`` by then and
  is left alone: it is attached once, by its own code;
- under gunicorn ``--preload`` the master imports the app but serves nothing: the
  TracerProvider, its export thread and the OTLP connection are made in each worker, after the
  fork.

Attaching leaves ``app.wsgi_app`` as the app made it (see :mod:`flask_sigobs.appcall`). After the
first request the cost per request is one dictionary look-up. Attaching is done under
a lock, once per app, whatever the number of threads serving its first requests. If it fails (an
invalid ``SIGOBS_*`` value), the failure is reported once on the ``flask_sigobs`` logger (standard
error when logging is not set up), and the app keeps serving, unobserved: ``sigobs doctor`` says why.

Two launchers call :func:`install`: the ``opentelemetry_instrumentor`` entry point
(:mod:`flask_sigobs.instrumentor`, for ``opentelemetry-instrument``) and ``sigobs run``
(:mod:`flask_sigobs.bootstrap`).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import flask

from . import appcall
from .errors import logger

#: ``app.extensions`` key under which an attach that failed is remembered (with its reason), so
#: that a misconfigured app is not tried again on every request.
FAILED_KEY = "sigobs.autoattach_failed"

_lock = threading.RLock()
_installed = False
_shared: Any = None  # the SigObs instance that serves every auto-attached app


#: The name of the ``opentelemetry_instrumentor`` entry point, as
#: ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` spells it.
ENTRY_POINT = "flask_sigobs"


def disabled(environ: Any = None) -> bool:
    """Whether ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` switches flask-sigobs off (``*`` does too)."""
    environ = os.environ if environ is None else environ
    names = {name.strip() for name in environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}
    return ENTRY_POINT in names or "*" in names


def installed() -> bool:
    return _installed


def install() -> None:
    """Attach every Flask app on its first request from now on (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        appcall.set_first_call(_first_request)


def _first_request(app: flask.Flask) -> None:
    """A request for an app with no runtime: attach it, unless something did or it failed before."""
    extensions = app.extensions
    if "sigobs" not in extensions and FAILED_KEY not in extensions:
        attach(app)


def uninstall() -> None:
    """Undo :func:`install`; apps already attached stay attached."""
    global _installed
    with _lock:
        if not _installed:
            return
        appcall.set_first_call(None)
        _installed = False


def shared_sigobs() -> Any:
    """The one ``SigObs`` of the auto-attached apps (one instance serves any number of apps)."""
    global _shared
    with _lock:
        if _shared is None:
            from .extension import SigObs

            _shared = SigObs()
            _shared._sigobs_autoattach = True  # init_app: a later explicit SigObs(app) is ignored, warned
        return _shared


def attach(app: flask.Flask) -> bool:
    """Attach flask-sigobs to ``app`` unless something already did; True if it is attached now.

    Safe to call from several threads at once: the app is attached once.
    """
    with _lock:
        extensions = app.extensions
        if "sigobs" in extensions:
            return True
        if FAILED_KEY in extensions:
            return False
        try:
            shared_sigobs().init_app(app)
        except Exception as exc:
            extensions[FAILED_KEY] = f"{type(exc).__name__}: {exc}"
            message = (f"flask-sigobs could not attach to the Flask app {app.name!r}: {exc}; "
                       f"the app is served without it (run `sigobs doctor` for details)")
            try:
                logger.error(message)  # with no handler anywhere, logging's last resort: stderr
            except Exception:
                pass
            return False
        return True


def failure(app: flask.Flask) -> str | None:
    """Why attaching to ``app`` failed, if it did."""
    return app.extensions.get(FAILED_KEY)
