"""What one authentication decision becomes: the row, built on the request path from the event.

The row's keys are the log line's own (``event``, ``outcome``, ``reason``, ``enduser.id``,
``client.address``, ...). Everything in it has been through the app's ``Redactor`` already (the
event's attributes are), so no password, token or cookie value can reach it; what this module adds
is the audit's own meaning: the outcome, the reason as a code from :data:`REASONS` (the sender's
own words kept beside it, as ``reason.text``), a keyed hash of the session id, and the protection
of a user name that matches no account.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timezone
from typing import Any

from ..bridges import auth_level

#: The reason vocabulary: a short code for why a decision went the way it did. A sender may pass
#: one of these as ``reason=``; free text is matched against :data:`SYNONYMS`, and kept as it was
#: in ``reason.text`` whatever the code.
REASONS: dict[str, str] = {
    "bad_password": "the user exists, the password (or other secret) was wrong",
    "unknown_user": "the user name matches no account (the name is protected, see docs/audit.md)",
    "disabled": "the account exists but is disabled",
    "locked": "the account or the client is locked out",
    "expired": "the password or the account has expired",
    "mfa_failed": "the second factor was wrong or missing",
    "not_permitted": "a known user was refused a resource",
    "unauthenticated": "a resource needed a login and there was none",
    "session_expired": "the session must be refreshed by logging in again",
    "session_protected": "the session was dropped by session protection",
    "too_many_failures": "the failure threshold was reached (auth.login_fail_max)",
    "other": "any other reason: see reason.text",
}

#: Free text (lower case, runs of anything but letters and digits as one ``_``) -> code.
SYNONYMS: dict[str, str] = {
    **{code: code for code in REASONS},
    "bad_password": "bad_password", "wrong_password": "bad_password", "invalid_password": "bad_password",
    "incorrect_password": "bad_password", "bad_credentials": "bad_password",
    "invalid_credentials": "bad_password", "wrong_credentials": "bad_password",
    "password_mismatch": "bad_password", "wrong_username_or_password": "bad_password",
    "unknown_user": "unknown_user", "no_such_user": "unknown_user", "user_not_found": "unknown_user",
    "unknown_username": "unknown_user", "no_such_account": "unknown_user", "not_found": "unknown_user",
    "unknown_account": "unknown_user", "user_does_not_exist": "unknown_user",
    "account_disabled": "disabled", "user_disabled": "disabled", "inactive": "disabled",
    "account_locked": "locked", "locked_out": "locked", "rate_limited": "locked", "too_many_attempts": "locked",
    "password_expired": "expired", "account_expired": "expired",
    "mfa": "mfa_failed", "bad_otp": "mfa_failed", "invalid_otp": "mfa_failed", "2fa_failed": "mfa_failed",
    "totp_failed": "mfa_failed", "mfa_required": "mfa_failed",
    "forbidden": "not_permitted", "permission_denied": "not_permitted", "denied": "not_permitted",
}

#: Event -> (outcome, the reason when the sender gives none). Every auth event is audited; one
#: missing here is a success without a reason (a new Flask-Login signal, say).
DECISIONS: dict[str, tuple[str, str | None]] = {
    "auth.login_succeeded": ("success", None),
    "auth.login_failed": ("failure", "other"),
    "auth.logged_out": ("success", None),
    "auth.access_denied": ("failure", "not_permitted"),
    "auth.login_fail_max": ("failure", "too_many_failures"),
    "auth.user_logged_in": ("success", None),
    "auth.user_logged_out": ("success", None),
    "auth.user_loaded_from_cookie": ("success", None),
    "auth.user_loaded_from_request": ("success", None),
    "auth.user_login_confirmed": ("success", None),
    "auth.user_unauthorized": ("failure", "unauthenticated"),
    "auth.user_needs_refresh": ("failure", "session_expired"),
    "auth.session_protected": ("failure", "session_protected"),
    # Flask-Security-Too's (flask_sigobs/bridges/flask_security.py)
    "auth.user_authenticated": ("success", None),
    "auth.user_failed_authn": ("failure", "bad_password"),  # a known user, a wrong credential
    "auth.user_unauthenticated": ("failure", "unauthenticated"),
    "auth.user_not_registered": ("failure", "other"),
}


def decision(name: str) -> tuple[str, str | None]:
    """(outcome, default reason) of an auth event: the table above, else by its name as the
    configured auth signals' rule reads it (``bridges.auth_level``: a name with ``fail``,
    ``denied``, ``unauthorized``, ... is a failure): so a signal named in SIGOBS_AUTH_SIGNALS, or a
    new signal of a bridge, is audited with the outcome its log line's level says."""
    found = DECISIONS.get(name)
    if found is None:
        level, _ = auth_level(name.rpartition(".")[2])
        found = ("failure", "other") if level >= logging.WARNING else ("success", None)
        if len(DECISIONS) < 4096:
            DECISIONS[name] = found
    return found

#: The attributes that are columns of their own; the rest of the event's attributes are ``data``.
FIELDS = ("enduser.id", "client.address", "user_agent.original", "http.route", "request.id")
_NOT_DATA = frozenset((*FIELDS, "reason", "trace_id", "span_id", "service.name", "http.request.method", "url.path"))
_WORDS = re.compile(r"[^a-z0-9]+")
MAX_REASON_TEXT = 256
MAX_DATA = 4096
PROTECTED_PREFIX = "hash:"


def reason_code(text: Any, default: str | None) -> str | None:
    """The vocabulary's code for what a sender said (``"bad password"`` -> ``bad_password``)."""
    if text is None or text == "":
        return default
    key = _WORDS.sub("_", str(text).lower()).strip("_")
    return SYNONYMS.get(key, "other")


class Protector:
    """Keyed hashes: of the session id, and of a user name that matches no account.

    ``key`` is ``SIGOBS_AUDIT_KEY`` when set (then nobody without it can test a guess against a
    hash), else derived from the app's ``SECRET_KEY`` or a random salt kept beside the journal.
    """

    def __init__(self, key: Any, unknown_users: str) -> None:
        self._source = key  # bytes, or a function that makes them when first needed
        self._key: bytes | None = None
        self.unknown_users = unknown_users  # "hash" | "keep" | "drop"

    def digest(self, value: str) -> str:
        key = self._key
        if key is None:
            source = self._source
            key = self._key = hashlib.blake2b(source() if callable(source) else source, digest_size=32,
                                              person=b"sigobs-audit").digest()
        # blake2b with a key is a MAC in one call: a fifth of what hmac.new(...).hexdigest() costs.
        return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), key=key, digest_size=16).hexdigest()

    def user(self, name: str) -> str | None:
        if self.unknown_users == "keep":
            return name
        if self.unknown_users == "drop":
            return None
        return PROTECTED_PREFIX + self.digest("user:" + name)


def protect(name: str, attributes: dict[str, Any], protector: Protector) -> dict[str, Any]:
    """The attributes, with the user name protected when it matches no account (``unknown_user``):
    on the request path, so that the name never reaches even the journal."""
    said = attributes.get("reason")
    if said is None or "enduser.id" not in attributes or decision(name)[0] != "failure":
        return attributes
    if cached_reason(said) != "unknown_user" or str(attributes["enduser.id"]).startswith(PROTECTED_PREFIX):
        return attributes
    protected = dict(attributes)
    user = protector.user(str(attributes["enduser.id"]))
    if user is None:
        del protected["enduser.id"]
    else:
        protected["enduser.id"] = user
    return protected


_REASONS_SEEN: dict[Any, str | None] = {}


def cached_reason(said: Any) -> str | None:
    """``reason_code`` of what senders say, remembered: a sender says the same few things."""
    try:
        return _REASONS_SEEN[said]
    except KeyError:
        code = reason_code(said, None)
        if len(_REASONS_SEEN) < 1024:
            _REASONS_SEEN[said] = code
        return code
    except TypeError:  # unhashable
        return reason_code(said, None)


def build(name: str, attributes: dict[str, Any], time_us: int, trace_id: str | None, span_id: str | None,
          service_name: str | None, route: str | None, session_hash: str | None) -> dict[str, Any]:
    """The row of one auth event, by column (``store.COLUMNS``; the writer thread's work)."""
    outcome, default = decision(name)
    said = attributes.get("reason")
    if said is None:
        reason, text = default if outcome == "failure" else None, None
    else:
        reason = cached_reason(said) or default
        text = (said if isinstance(said, str) else str(said))[:MAX_REASON_TEXT]
    get = attributes.get
    data = {k: v for k, v in attributes.items() if k not in _NOT_DATA}
    return {
        "time": iso_time(time_us), "event": name, "outcome": outcome, "reason": reason, "reason_text": text,
        "enduser_id": get("enduser.id"), "client_address": get("client.address"),
        "user_agent": get("user_agent.original"), "http_route": get("http.route") or route,
        "request_id": get("request.id"), "trace_id": trace_id, "span_id": span_id,
        "service_name": service_name, "session_hash": session_hash, "data": data or None,
    }


_SECOND: list[Any] = [None, ""]  # the last second formatted: rows come many to a second


def iso_time(time_us: int) -> str:
    """UTC, microseconds, ``Z``: fixed width, so the text sorts as the time does."""
    seconds, micros = divmod(time_us, 1_000_000)
    last = _SECOND
    if last[0] != seconds:
        last[1] = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        last[0] = seconds
    return f"{last[1]}.{micros:06d}Z"


def parse_iso(text: str) -> int:
    """ISO-8601 (``Z`` or an offset; naive is UTC) -> microseconds since the epoch."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    delta = value - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
