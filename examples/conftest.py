"""Fixtures of the example app's tests: a fresh app from the factory for each test, and its client.

The ``sigobs_events`` and ``sigobs_spans`` fixtures come from flask-sigobs' pytest plugin, which
pip installs with the package: nothing to import or declare here.
"""

from __future__ import annotations

import pytest

from examples.app import create_app


@pytest.fixture
def app(tmp_path):
    # The tests read the events, not the log: its lines go to a file of the test's own.
    return create_app({"TESTING": True, "SIGOBS_LOG_FILE": str(tmp_path / "events.log")})


@pytest.fixture
def client(app):
    return app.test_client()
