"""The audit trail: every authentication decision as a row, tamper-evident (docs/audit.md).

Where a failed login becomes a row: ``rows.build`` (what the row holds), called by
``trail.Trail.record`` (the journal, on the request path); the writer thread in ``trail`` puts it in
the database (``store``), chained by ``chain``, counted by ``bruteforce``. ``command`` is
``sigobs audit``.

For the app: :func:`check` before trying a password::

    from flask_sigobs import audit

    lock = audit.check(user=name)            # the client address is the request's
    if lock:
        return "Too many attempts", 429, {"Retry-After": str(lock.retry_after)}
"""

from __future__ import annotations

from typing import Any

__all__ = ["check", "for_app", "Lockout", "REASONS"]


def __getattr__(name: str) -> Any:
    # Lazily: ``sigobs audit``'s parser and ``config`` import this package; neither needs these.
    if name == "Lockout":
        from .bruteforce import Lockout

        return Lockout
    if name == "REASONS":
        from .rows import REASONS

        return REASONS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def for_app(app: Any = None) -> Any:
    """The ``Trail`` of ``app`` (default: the current app), or None when the audit is off."""
    import flask

    app = app or flask.current_app._get_current_object()
    sigobs = app.extensions.get("sigobs")
    if sigobs is None:
        return None
    return getattr(sigobs.runtime(app), "audit", None)


def check(user: str | None = None, address: str | None = None, app: Any = None) -> Any:
    """Is ``user`` (and/or ``address``, default: the current request's client address) locked out
    after too many failed logins, and for how long (``retry_after`` seconds)? False when not, or when
    the audit is off (a ``Lockout``). Counting is across workers, from the shared database, within a
    flush interval."""
    found = for_app(app)
    if found is None:
        from .bruteforce import OPEN

        return OPEN
    if address is None:
        address = _request_address(found)
    return found.check(user, address)


def _request_address(found: Any) -> str | None:
    import flask

    if not flask.has_request_context():
        return None
    from ..requeststate import STATE_KEY, client_address

    state = flask.request.environ.get(STATE_KEY)
    base = getattr(state, "base", None)
    if base and "client.address" in base:
        return base["client.address"]
    return client_address(flask.request.environ, found.trusted_proxies)
