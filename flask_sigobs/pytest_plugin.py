"""The pytest plugin of flask-sigobs: the ``sigobs_events`` and ``sigobs_spans`` fixtures.

Registered through the ``pytest11`` entry point of the base package (an entry point cannot be
gated by an extra: pip installs it with the distribution), so every pytest run in an environment
that has flask-sigobs loads this module, also in projects that never use it. It therefore imports
pytest alone: :mod:`flask_sigobs.testing`, and Flask and OpenTelemetry with it, are imported only
when a test asks for one of the fixtures. ``-p no:flask_sigobs`` switches the plugin off.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest


@pytest.fixture
def sigobs_events() -> Iterator[Any]:
    """The events flask-sigobs delivers during the test, of every app (those the test creates
    included): a :class:`flask_sigobs.testing.CapturedEvents`. Nothing of an earlier test is in it."""
    from flask_sigobs.testing import captured_events

    with captured_events() as events:
        yield events


@pytest.fixture
def sigobs_spans() -> Iterator[Any]:
    """The spans that end during the test on the tracer provider of every app that delivers an event
    meanwhile: a :class:`flask_sigobs.testing.CapturedSpans` (the SDK's ``ReadableSpan`` objects).
    The app's own exporters are left as they are."""
    from flask_sigobs.testing import captured_spans

    with captured_spans() as spans:
        yield spans
