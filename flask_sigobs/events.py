"""The event: what one signal firing becomes, and the attribute builders for each kind.

Attribute names are OpenTelemetry semantic conventions, the same keys in the log line and on the
span event. Builders take what the signal gives and return a flat dict of already-cleaned values.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from .errors import report_once
from .paths import PLAN_KEY, remember
from .redaction import SECRETS_KEY, Redactor, escape, scrub, scrub_exception
from .requeststate import RequestState, client_address

MAX_FRAMES = 30
MAX_STACKTRACE = 8192


class Event:
    """One signal firing. ``span_attributes``, when the builder knows them, are what the span event
    carries: the attributes less what the request's span has as its own already. ``span_user``:
    the ``enduser.id`` the event gives the span, the user who made the request (a failed login's
    user is only who someone claimed to be: its event names them, the span does not)."""

    __slots__ = ("name", "level", "attributes", "time_ns", "exception", "span_attributes", "span_user")

    def __init__(self, name: str, level: int, attributes: dict[str, Any],
                 exception: BaseException | None = None, span_attributes: dict[str, Any] | None = None,
                 span_user: str | None = None) -> None:
        self.name = name
        self.level = level
        self.attributes = attributes
        self.time_ns = time.time_ns()
        self.exception = exception
        self.span_attributes = span_attributes
        self.span_user = span_user


def request_attributes(request: Any, state: RequestState, redactor: Redactor, trusted_proxies: int) -> dict[str, Any]:
    """Who asked for what: built once per request and reused by every request event."""
    environ = request.environ
    text = redactor.text
    path = request.path
    rule = request.url_rule
    if rule is not None:
        # A rule seen before (every request but its first) is one look-up, without a call; its plan
        # is None when no variable of the rule is sensitive.
        known = redactor.paths.plans.get(id(rule))
        plan = known[1] if known is not None and known[0] is rule else redactor.paths.plan(rule)
    else:  # no rule kept: a 404, or a path that matched one but not its method, or a redirect
        plan = redactor.paths.request_plan(request) if request.routing_exception is not None else None
    if plan is not None:
        redacted = plan.redact(path)
        if redacted != path:
            remember(environ, path, redacted, plan)
            path = redacted
        environ[PLAN_KEY] = plan  # for the span the standard instrumentation made from the raw path
    attrs: dict[str, Any] = {
        "http.request.method": text(environ.get("REQUEST_METHOD", "")),
        "url.path": text(path),
    }
    if rule is not None:
        attrs["http.route"] = rule.rule
    query = environ.get("QUERY_STRING")
    if query:
        attrs["url.query"] = redactor.query(query)
    attrs["client.address"] = client_address(environ, trusted_proxies)
    agent = environ.get("HTTP_USER_AGENT")
    if agent:
        attrs["user_agent.original"] = text(agent)
    attrs["request.id"] = state.request_id
    return attrs


def finished_attributes(state: RequestState, status_code: int,
                        size: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The access-log line (the request attributes plus the outcome: status, duration, body size),
    and the outcome alone: what the span event adds to a span that has the request attributes already."""
    outcome: dict[str, Any] = {"request.id": state.request_id, "http.response.status_code": status_code,
                               "duration_ms": (time.perf_counter_ns() - state.started) // 1000 / 1000}
    if size is not None:
        outcome["http.response.body.size"] = size
    if state.user_id is not None:
        outcome["enduser.id"] = state.user_id
    return {**(state.base or {}), **outcome}, outcome


def exception_type(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


def exception_attributes(exc: BaseException, redactor: Redactor) -> dict[str, Any]:
    """Type, message and stack trace, both as text (the OpenTelemetry key) and as frames.

    An exception raised while serving a request may echo the value of one of its sensitive
    fields (``ValueError(f"bad password {form['password']}")``): those values are replaced by
    ``[REDACTED]`` here, in the exception itself (so Flask's error log and the span's
    ``exception`` event say it too) and, for ``otel_setup.release_end``, noted in the environ.
    """
    import flask  # here: importing this module must not import Flask (``sigobs tail``)

    secrets: tuple[str, ...] = ()
    try:
        if flask.has_request_context():
            request = flask.request._get_current_object()
            secrets = redactor.request_secrets(request)
            if secrets:
                request.environ[SECRETS_KEY] = secrets
                scrub_exception(exc, secrets)
    except Exception as error:  # never let the search for secrets cost the event
        report_once(("secrets", type(error)), "flask-sigobs could not search an exception for secrets: %r", error)
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {type(exc).__name__}>"
    frames = traceback.extract_tb(exc.__traceback__, limit=-MAX_FRAMES) if exc.__traceback__ else []
    try:
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-MAX_FRAMES))
    except Exception:
        stack = "".join(traceback.format_list(frames))
    if secrets:
        message = scrub(message, secrets)
        stack = scrub(stack, secrets)
    if len(stack) > MAX_STACKTRACE:
        stack = "..." + stack[-MAX_STACKTRACE:]
    return {
        "exception.type": exception_type(exc),
        "exception.message": redactor.text(message),
        "exception.stacktrace": escape(stack),
        "exception.frames": [
            {"file": redactor.text(f.filename), "line": f.lineno, "function": redactor.text(f.name)} for f in frames
        ],
    }


def user_id(user: Any, redactor: Redactor) -> str | None:
    """An id from whatever a sender passes as the user: an id, a name or a user object."""
    if user is None:
        return None
    if isinstance(user, (str, int)):
        return redactor.text(str(user))
    try:
        get_id = getattr(user, "get_id", None)  # Flask-Login's UserMixin
        if hasattr(user, "fs_uniquifier") and getattr(user, "email", None):
            # Flask-Security-Too's get_id() is the fs_uniquifier, a random value that names the
            # user's sessions and tokens (changing it signs them all out). Its users sign in with
            # their email (the primary key is not even set before a new user is committed), and an
            # app's own event for an unknown one names the email typed: the same vocabulary.
            value = user.email
        elif callable(get_id):
            value = get_id()
        else:
            value = getattr(user, "id", None)
            if value is None:
                value = getattr(user, "username", None)
            if value is None:
                value = user
        return redactor.text(str(value))
    except Exception:
        return f"<unprintable {type(user).__name__}>"
