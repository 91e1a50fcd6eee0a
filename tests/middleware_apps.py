"""Apps that keep a middleware object on ``app.wsgi_app`` and read it back, as many real apps do.

:class:`Prefix` is the reverse-proxy prefix middleware of issue 21, reduced to what matters: an
object with an attribute (``script_name``) that the views read through
``current_app.wsgi_app``. :data:`app` knows nothing of flask-sigobs (for the launchers);
:func:`create_app` is a factory that attaches with ``init_app`` when given a ``SigObs``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, current_app, jsonify


class Prefix:
    """What a reverse-proxy prefix middleware keeps: the app it wraps and the prefix it serves."""

    def __init__(self, app: Any, script_name: str = "/") -> None:
        self.app, self.script_name = app, script_name

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)


class Tagging:
    """Another middleware, put on after the attach: it marks the environ and keeps a counter."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.calls += 1
        environ["tests.tagged"] = True
        return self.app(environ, start_response)


def create_app(sigobs: Any = None, name: str = "prefixed") -> Flask:
    app = Flask(name + os.environ.get("ATTACH_TEST_RUN", ""))
    app.config["SECRET_KEY"] = "middleware-apps-not-a-secret"
    app.wsgi_app = Prefix(app.wsgi_app)  # type: ignore[method-assign]

    @app.get("/")
    def index() -> Any:
        return current_app.wsgi_app.script_name  # type: ignore[attr-defined]

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return jsonify(id=item_id, prefix=current_app.wsgi_app.script_name, pid=os.getpid())  # type: ignore[attr-defined]

    @app.get("/health")
    def health() -> Any:
        return "ok"

    if sigobs is not None:
        sigobs.init_app(app)
    return app


app = create_app()
