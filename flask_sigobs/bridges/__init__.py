"""Where authentication and observed events come from, besides :mod:`flask_sigobs.auth`.

One module per source: Flask-Login's signals and Flask-Security-Too's (observed as soon as the
package is installed), and the signals an app names in ``SIGOBS_OBSERVE`` / ``SIGOBS_AUTH_SIGNALS``.
Each gives :class:`Source` rows; the extension connects one guarded receiver per row.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple


class Source(NamedTuple):
    """One observed signal and what its firing becomes."""

    signal: Any
    event: str  # the event's name: ``auth.user_logged_in``, ``shop.order_placed``, ...
    level: int
    #: The event says who made the request (a successful authentication, a logout): its user
    #: becomes the request's ``enduser.id``, on the access line and the span. A failed attempt's
    #: user is only the name someone typed: it stays on its own event.
    identifies: bool = False
    #: The keyword data kept on the event (redacted as always); None keeps all of it. A bridge
    #: lists what is worth keeping, so a form's data or a one-time code is never even looked at.
    keep: frozenset[str] | None = None
    is_auth: bool = True  # auth events carry the client address and user agent, never signal.sender
    path: str = ""  # the import path it was configured by, if it was


#: Words in a configured auth signal's name that make it a failure (``warning``, never the
#: request's user), and words that make it a successful authentication (the request's user).
FAILURE_WORDS = ("fail", "denied", "unauthori", "unauthenticated", "invalid", "locked", "reject",
                 "refused", "blocked")
SUCCESS_WORDS = ("logged_in", "login_confirmed", "login_succeeded", "authenticated", "signed_in",
                 "logged_out", "signed_out")


def auth_level(name: str) -> tuple[int, bool]:
    """(level, identifies) of a configured auth signal, from its name (see docs/events.md)."""
    text = name.lower().replace("-", "_")
    if any(word in text for word in FAILURE_WORDS):
        return logging.WARNING, False
    return logging.INFO, any(word in text for word in SUCCESS_WORDS)
