"""The ``opentelemetry_instrumentor`` entry point: ``opentelemetry-instrument`` attaches flask-sigobs.

``opentelemetry-instrument gunicorn app:app`` loads every installed instrumentor at start-up;
this one installs :mod:`flask_sigobs.autoattach`, so every Flask app of the process is attached
on its first request, beside the Flask instrumentation (whose server span gets the events).
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=flask_sigobs`` switches it off like any other.

Its base class comes from opentelemetry-instrumentation (the ``[otel]`` extra), imported here at
the top on purpose: only ``opentelemetry-instrument``, which that package provides, loads this
module, and nothing else in flask-sigobs imports it.
"""

from __future__ import annotations

from typing import Any, Collection

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor


class SigObsInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Attach flask-sigobs to every Flask app of the process (on each app's first request)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("flask >= 3.0",)

    def _instrument(self, **kwargs: Any) -> None:
        from . import autoattach

        autoattach.install()

    def _uninstrument(self, **kwargs: Any) -> None:
        from . import autoattach

        autoattach.uninstall()

