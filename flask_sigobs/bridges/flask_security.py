"""Flask-Security-Too's signals, observed as ``auth.<signal name>`` events when it is installed.

Its signals are named with dashes (``user-authenticated``); the events take the Python names
(``auth.user_authenticated``), as Flask-Security-Too's documentation does. Each keeps only the
keyword data listed here: ``user_registered`` passes the whole registration form (the password
in it) and the token senders pass the token or the one-time code itself, none of which is ever
read. Signals a version lacks (``user_failed_authn`` came in 5.8) are skipped.

What it does not send: nothing at all for a login with an unknown user name (its login form
fails before any signal); docs/events.md shows how an app fills that gap.
"""

from __future__ import annotations

import logging

from ..errors import report_once
from . import Source

DEBUG, INFO, WARNING = logging.DEBUG, logging.INFO, logging.WARNING

#: name -> (level, identifies the request's user, keyword data kept)
SIGNALS: dict[str, tuple[int, bool, tuple[str, ...]]] = {
    "user_authenticated": (INFO, True, ("authn_via",)),
    "user_failed_authn": (WARNING, False, ("auth_type", "tfa")),  # a known user, a wrong credential
    "user_unauthenticated": (WARNING, False, ()),  # a protected view without authentication
    "user_registered": (INFO, False, ()),  # not form_data (the password), not the confirm token
    "user_not_registered": (WARNING, False, ("existing_email", "existing_username")),
    "user_confirmed": (INFO, False, ()),
    "confirm_instructions_sent": (DEBUG, False, ()),
    "login_instructions_sent": (DEBUG, False, ()),
    "password_reset": (INFO, False, ()),
    "password_changed": (INFO, False, ()),
    # Anyone may ask for a reset of anyone's password: the user named is not who asked.
    "reset_password_instructions_sent": (INFO, False, ()),
    "tf_code_confirmed": (INFO, False, ("method",)),  # user_authenticated follows it
    "tf_profile_changed": (INFO, False, ("method",)),
    "tf_security_token_sent": (DEBUG, False, ("method",)),  # not the code
    "tf_disabled": (INFO, False, ()),
    "us_security_token_sent": (DEBUG, False, ("method",)),  # not the code
    "us_profile_changed": (INFO, False, ("methods", "delete")),
    "wan_registered": (INFO, False, ("name",)),
    "wan_deleted": (INFO, False, ("name",)),
    "change_email_instructions_sent": (INFO, False, ()),
    "change_email_confirmed": (INFO, False, ()),
    "username_recovery_email_sent": (INFO, False, ()),
    "username_changed": (INFO, False, ()),
    "refresh_tracker_created": (DEBUG, False, ()),
    "refresh_tracker_revoked": (INFO, False, ()),
}


def signals() -> list[Source]:
    """A :class:`Source` for each Flask-Security-Too signal; empty when it is not installed.

    Importing it imports the whole package (about 0.2 s, once per process): an app that has it
    installed almost always uses it.
    """
    try:
        import flask_security.signals as module
    except ImportError:
        return []
    except Exception as exc:  # installed but broken: the app's own import will say how
        report_once(("bridge", "flask_security"), "flask-sigobs could not import Flask-Security-Too's "
                    "signals: %r", exc)
        return []
    found = []
    for name, (level, identifies, keep) in SIGNALS.items():
        signal = getattr(module, name, None)
        if signal is not None:
            found.append(Source(signal, f"auth.{name}", level, identifies, frozenset(keep)))
    return found
