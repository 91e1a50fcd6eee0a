"""Where a request enters a Flask app: ``Flask.__call__``, the one place flask-sigobs hooks in.

Every WSGI server calls the app object, and ``Flask.__call__`` calls ``self.wsgi_app``: the app's
own WSGI callable, which the app may have replaced by middleware (``ProxyFix``, a prefix
middleware) and may read back (``current_app.wsgi_app.script_name``). flask-sigobs never
replaces that attribute. Instead, when this module is first imported (by ``SigObs`` or by a
launcher), ``flask.app.Flask.__call__`` is replaced, once per process, by a function that hands
each request for an observed app to that app's runtime, which makes the request's state and then
calls down: the app's ``wsgi_app`` as it is at that moment. So the runtime is outside whatever
middleware the app has, put in place before or after the attach, always the same way round, and
the request state exists before anything of the app runs. (sentry-sdk hooks in at the same place.)

An app that is not observed pays one dictionary look-up per request, then ``Flask.__call__`` as
it was. With a launcher installed (:mod:`flask_sigobs.autoattach`), its first request attaches it.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import flask.app

#: The instance-dict key under which an observed app keeps its runtime's entry point.
ENTRY_KEY = "_sigobs_entry"

_lock = threading.Lock()
_original: Callable[..., Any] | None = None
_first_call: Callable[[Any], None] | None = None  # autoattach's, when a launcher installed it
_patched: Any = None  # our __call__


def _flasks_own_call(self: Any, environ: Any, start_response: Any) -> Any:
    """What ``Flask.__call__`` does (Flask 3): kept for comparison in :func:`install`."""
    return self.wsgi_app(environ, start_response)


#: How an observed app's runtime calls down: ``None`` when ``Flask.__call__`` was Flask's own
#: (the runtime then calls ``app.wsgi_app`` itself, a frame less per request), otherwise the
#: ``__call__`` we replaced (a tool that patched it before us, such as sentry-sdk, keeps its place).
DOWN: Callable[..., Any] | None = None


def install() -> None:
    """Replace ``flask.app.Flask.__call__`` (idempotent; never undone: observed apps rely on it)."""
    global _original, _patched, DOWN
    with _lock:
        if _original is not None:
            return
        original = flask.app.Flask.__call__
        _original = original
        # Flask's own, unchanged: the same code as the copy above, not just the same name.
        flasks = getattr(original, "__qualname__", None) == "Flask.__call__" \
            and getattr(getattr(original, "__code__", None), "co_code", None) == _flasks_own_call.__code__.co_code
        DOWN = None if flasks else original

        def __call__(self: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            entry = self.__dict__.get(ENTRY_KEY)
            if entry is None:
                first = _first_call
                if first is None:
                    return original(self, environ, start_response)
                first(self)  # a launcher: attach the app now, on its first request
                entry = self.__dict__.get(ENTRY_KEY)
                if entry is None:  # not attached (switched off, or its configuration is invalid)
                    return original(self, environ, start_response)
            return entry(self, environ, start_response)

        __call__.__wrapped__ = original  # type: ignore[attr-defined]
        __call__.__sigobs_autoattach__ = False  # type: ignore[attr-defined]  # True while a launcher's attach is on
        _patched = __call__
        flask.app.Flask.__call__ = __call__  # type: ignore[method-assign]


def call_down(app: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    """What ``Flask.__call__`` did before we replaced it: the app's middleware, then Flask."""
    if DOWN is None:
        return app.wsgi_app(environ, start_response)
    return DOWN(app, environ, start_response)


def observe(app: Any, entry: Callable[[Any, dict[str, Any], Callable[..., Any]], Any]) -> None:
    """Route ``app``'s requests through ``entry(app, environ, start_response)``."""
    install()
    app.__dict__[ENTRY_KEY] = entry


def set_first_call(hook: Callable[[Any], None] | None) -> None:
    """What a request for an app not observed calls first (the launchers' attach), or nothing."""
    global _first_call
    install()
    _first_call = hook
    _patched.__sigobs_autoattach__ = hook is not None


install()
