"""Authentication signals: send them from your login and permission code.

Every sender passes the user (an id, a name, or a user object with ``get_id()`` or ``id``) and
any keyword data worth keeping; secrets among that data are redacted before anything is written::

    auth.login_succeeded.send(app, user="alice")
    auth.login_failed.send(app, user="alice", reason="bad password")
    auth.logged_out.send(app, user="alice")
    auth.access_denied.send(app, user="alice", permission="admin")
"""

from __future__ import annotations

import logging

from blinker import Namespace

signals = Namespace()

login_succeeded = signals.signal("login_succeeded", doc="A user proved who they are.")
login_failed = signals.signal("login_failed", doc="A login attempt was refused.")
logged_out = signals.signal("logged_out", doc="A user ended their session.")
access_denied = signals.signal("access_denied", doc="A known user was refused a resource.")

#: The level of each event; failures are warnings, so ``SIGOBS_LOG_LEVEL=warning`` still audits them.
LEVELS = {
    login_succeeded: logging.INFO,
    login_failed: logging.WARNING,
    logged_out: logging.INFO,
    access_denied: logging.WARNING,
}

#: The events that name who made the request: their user becomes the request's ``enduser.id`` (the
#: access line's and the span's). ``login_failed`` names only who someone claimed to be;
#: ``access_denied`` names a known (authenticated) user refused one resource: that user asked.
IDENTIFIES = frozenset({login_succeeded, logged_out, access_denied})
