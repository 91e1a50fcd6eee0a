"""Kept for code that imports it: the Flask-Login bridge is :mod:`flask_sigobs.bridges.flask_login`."""

from __future__ import annotations

from typing import Any

from .bridges import flask_login as _bridge

SIGNAL_LEVELS = _bridge.SIGNAL_LEVELS


def signals() -> list[tuple[Any, str, int]]:
    """(signal, event name, level) for each Flask-Login signal, as this module always gave them."""
    return [(source.signal, source.event, source.level) for source in _bridge.signals()]
