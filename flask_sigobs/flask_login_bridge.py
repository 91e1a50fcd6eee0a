"""Flask-Login's signals, observed as ``auth.<signal name>`` events when Flask-Login is installed."""

from __future__ import annotations

import logging
from typing import Any

#: Flask-Login signal name -> level. ``user_accessed`` fires on every request: left out on purpose.
SIGNAL_LEVELS = {
    "user_logged_in": logging.INFO,
    "user_logged_out": logging.INFO,
    "user_loaded_from_cookie": logging.DEBUG,
    "user_loaded_from_request": logging.DEBUG,
    "user_login_confirmed": logging.INFO,
    "user_unauthorized": logging.WARNING,
    "user_needs_refresh": logging.INFO,
    "session_protected": logging.INFO,
}


def signals() -> list[tuple[Any, str, int]]:
    """(signal, event name, level) for each Flask-Login signal; empty when it is not installed."""
    try:
        import flask_login.signals as login_signals
    except ImportError:
        return []
    found = []
    for name, level in SIGNAL_LEVELS.items():
        signal = getattr(login_signals, name, None)
        if signal is not None:
            found.append((signal, f"auth.{name}", level))
    return found
