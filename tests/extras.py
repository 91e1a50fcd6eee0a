"""What the optional extras bring, for the tests that need one.

``.venv`` and the matrix rows ``oldest`` and ``newest_otel`` install every extra; the ``newest``
row is the base install (``[test,grpc]``, no ``[otel]``), where these tests skip, saying why,
and the rest prove that flask-sigobs works without the instrumentation.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest


def _missing(module: str, extra: str, what: str) -> str | None:
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package missing
        found = False
    return None if found else f"needs flask-sigobs[{extra}]: {what} is not installed (the base install's row)"


NO_OTEL = _missing("opentelemetry.instrumentation.flask", "otel", "opentelemetry-instrumentation-flask")


def flask_instrumentor() -> Any:
    """``opentelemetry.instrumentation.flask.FlaskInstrumentor``; the test skips where it is missing."""
    if NO_OTEL:
        pytest.skip(NO_OTEL)
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    return FlaskInstrumentor


def require_app(module: str) -> None:
    """Skip, saying why, where a third-party app of the ``[apps]`` extra is not installed: they
    need Flask 3.1, so the oldest row of the matrix (Flask 3.0) has none of them."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:
        found = False
    if not found:
        pytest.skip(f"needs flask-sigobs[apps]: {module} is not installed (they need Flask 3.1: "
                    "not on the matrix's oldest row)")
