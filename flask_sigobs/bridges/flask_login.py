"""Flask-Login's signals, observed as ``auth.<signal name>`` events when Flask-Login is installed."""

from __future__ import annotations

import logging
from . import Source

#: Flask-Login signal name -> (level, identifies: the user it names made the request).
#: ``user_accessed`` fires on every request: left out on purpose. ``session_protected`` fires on
#: ordinary anonymous traffic with a session (no ``_id`` in it): debug, a span event only by default.
SIGNALS = {
    "user_logged_in": (logging.INFO, True),
    "user_logged_out": (logging.INFO, True),  # the request was made by the user logging out
    "user_loaded_from_cookie": (logging.DEBUG, True),  # "remember me": an authenticated request
    "user_loaded_from_request": (logging.DEBUG, True),  # a request_loader's (API key, token) user
    "user_login_confirmed": (logging.INFO, True),
    "user_unauthorized": (logging.WARNING, False),
    "user_needs_refresh": (logging.INFO, False),
    "session_protected": (logging.DEBUG, False),
}
SIGNAL_LEVELS = {name: level for name, (level, _) in SIGNALS.items()}


def signals() -> list[Source]:
    """A :class:`Source` for each Flask-Login signal; empty when it is not installed."""
    try:
        import flask_login.signals as module
    except ImportError:
        return []
    found = []
    for name, (level, identifies) in SIGNALS.items():
        signal = getattr(module, name, None)
        if signal is not None:
            found.append(Source(signal, f"auth.{name}", level, identifies))
    return found
