"""``sigobs doctor``: loads the app as ``flask --app`` does, diagnoses it, prints the report.

Exit status: 0 when traces and logs will arrive, 1 when something keeps them from arriving, 2 when
the app could not be loaded (then ``--json`` prints ``{"ok": false, "error": ...}``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from .diagnosis import diagnose
from .render import render


def load_app(spec: str | None) -> tuple[Any, str]:
    """The app ``spec`` names, as ``flask --app`` reads it; or the app of the running ``flask`` command."""
    from flask.cli import ScriptInfo

    if spec is None:
        try:
            import click

            context = click.get_current_context(silent=True)
        except Exception:
            context = None
        info = context.find_object(ScriptInfo) if context is not None else None
        if info is not None:  # `flask --app X sigobs doctor`
            return info.load_app(), info.app_import_path or os.environ.get("FLASK_APP") or "(flask)"
        spec = os.environ.get("FLASK_APP")
    info = ScriptInfo(app_import_path=spec, set_debug_flag=False)
    return info.load_app(), spec or "(wsgi.py or app.py)"


def _state_after_import(app: Any) -> dict[str, Any]:
    """What the app's import set up: a TracerProvider (before any fork), flask-sigobs itself."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    return {
        "provider_at_import": not isinstance(provider, trace.ProxyTracerProvider)
                              and not getattr(provider, "_sigobs_owned", False),
        "attached_at_import": "sigobs" in app.extensions,
    }


def run(args: Any) -> int:
    """``sigobs doctor``: 0 when traces and logs will arrive, 1 otherwise, 2 if the app cannot be loaded."""
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC's own notes of a failed handshake: said in words here
    try:
        app, where = load_app(getattr(args, "app", None))
    except Exception as exc:
        message = f"sigobs doctor: could not load the app: {type(exc).__name__}: {exc}"
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": message}))
        else:
            print(message, file=sys.stderr)
        return 2
    state = _state_after_import(app)
    report = diagnose(app, where, timeout=getattr(args, "timeout", None),
                      send_test_span=getattr(args, "test_span", True), before=state)
    if getattr(args, "json", False):
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        print(render(report))
    sys.stdout.flush()
    return 0 if report.ok else 1
