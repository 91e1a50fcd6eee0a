"""The example app as a user deploys it (``gunicorn tests.example_served:app``), plus the
``/health`` route the gunicorn helper waits for."""

from __future__ import annotations

from examples.app import app

app.add_url_rule("/health", "health", lambda: "ok")
