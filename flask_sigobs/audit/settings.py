"""The audit trail's settings, read with the others by ``config.load`` (keys in ``config.DEFAULTS``)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any, Callable

from .bruteforce import parse_threshold

DEFAULTS: dict[str, Any] = {
    "SIGOBS_AUDIT": True,
    "SIGOBS_AUDIT_URL": None,  # None: sqlite:///<instance folder>/sigobs-audit.db
    "SIGOBS_AUDIT_KEY": None,  # HMAC key of the hash chain (and of the protected hashes)
    "SIGOBS_AUDIT_JOURNAL": None,  # None: <instance folder>/sigobs-audit-journal
    "SIGOBS_AUDIT_JOURNAL_MAX": 64 * 1024 * 1024,  # bytes a process's journal may hold for a database that is down
    "SIGOBS_AUDIT_FLUSH_INTERVAL": 0.5,  # seconds between the writer thread's batches
    "SIGOBS_AUDIT_MAX_FAILURES": "10/5m",  # failures per window (per user, address, user and address); 0: off
    "SIGOBS_AUDIT_UNKNOWN_USERS": "hash",  # what a user name that matches no account becomes: hash | keep | drop
    "SIGOBS_AUDIT_MAX_DATA": 4096,  # bytes of the sender's keyword data (JSON) kept in a row
}

UNKNOWN_USERS = ("hash", "keep", "drop")


@dataclass(frozen=True)
class AuditSettings:
    url: str
    key: bytes | None
    hash_key: Any  # bytes, or a function that makes them on first use (the salt file: nothing made at init)
    journal: str
    journal_max: int
    flush_interval: float
    max_failures: int
    window: float
    unknown_users: str
    max_data: int


def load(values: dict[str, Any], app: Any, error: Callable[[str], Exception],
         as_bool: Callable[[Any, str], bool], as_int: Callable[[Any, str, int], int]) -> AuditSettings | None:
    if not as_bool(values["SIGOBS_AUDIT"], "SIGOBS_AUDIT"):
        return None
    instance = getattr(app, "instance_path", None) or os.path.join(os.getcwd(), "instance")
    url = values["SIGOBS_AUDIT_URL"] or "sqlite:///" + os.path.join(instance, "sigobs-audit.db")
    if not isinstance(url, str) or "://" not in url:
        raise error(f"SIGOBS_AUDIT_URL must be an SQLAlchemy URL (sqlite:///path, postgresql+psycopg://...), not {url!r}")
    journal = os.fspath(values["SIGOBS_AUDIT_JOURNAL"] or os.path.join(instance, "sigobs-audit-journal"))
    key = values["SIGOBS_AUDIT_KEY"]
    key_bytes = (key.encode() if isinstance(key, str) else bytes(key)) if key else None
    try:
        max_failures, window = parse_threshold(values["SIGOBS_AUDIT_MAX_FAILURES"])
    except ValueError as exc:
        raise error(f"SIGOBS_AUDIT_MAX_FAILURES: {exc}") from None
    try:
        interval = float(values["SIGOBS_AUDIT_FLUSH_INTERVAL"])
    except (TypeError, ValueError):
        raise error(f"SIGOBS_AUDIT_FLUSH_INTERVAL must be a number of seconds, not {values['SIGOBS_AUDIT_FLUSH_INTERVAL']!r}") from None
    if not 0.01 <= interval <= 60:
        raise error(f"SIGOBS_AUDIT_FLUSH_INTERVAL must be between 0.01 and 60 seconds, not {interval}")
    unknown = str(values["SIGOBS_AUDIT_UNKNOWN_USERS"]).strip().lower()
    if unknown not in UNKNOWN_USERS:
        raise error(f"SIGOBS_AUDIT_UNKNOWN_USERS must be one of {', '.join(UNKNOWN_USERS)}, not {unknown!r}")
    return AuditSettings(
        url=url, key=key_bytes, hash_key=key_bytes or _fallback_key(app, journal), journal=journal,
        journal_max=as_int(values["SIGOBS_AUDIT_JOURNAL_MAX"], "SIGOBS_AUDIT_JOURNAL_MAX", 4096),
        flush_interval=interval, max_failures=max_failures, window=window, unknown_users=unknown,
        max_data=as_int(values["SIGOBS_AUDIT_MAX_DATA"], "SIGOBS_AUDIT_MAX_DATA", 64))


def _fallback_key(app: Any, journal: str) -> Any:
    """Without ``SIGOBS_AUDIT_KEY``: the app's ``SECRET_KEY`` (already secret, already shared by its
    workers), else a random salt kept beside the journal (created once, mode 0600, when first needed)."""
    secret = app.config.get("SECRET_KEY") if hasattr(app, "config") else None
    if secret:
        return b"flask-sigobs audit\n" + (secret.encode() if isinstance(secret, str) else bytes(secret))
    return lambda: _salt(journal)


def _salt(journal: str) -> bytes:
    path = os.path.join(journal, ".salt")
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        pass
    except OSError:
        return secrets.token_bytes(32)  # unreadable: hashes of this process only (documented)
    try:
        os.makedirs(journal, exist_ok=True)
        salt = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(salt)
        return salt
    except FileExistsError:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return secrets.token_bytes(32)
