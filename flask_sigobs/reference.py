"""The configuration reference and the event catalogue, generated from the code.

docs/configuration.md and docs/events.md each hold a table written by this module between two
markers; tests/test_docs_reference.py fails when a key of :data:`config.DEFAULTS` or an event the
code can send is missing from them, or when the tables are stale. The keys, defaults, levels and
default states come from the code itself (``config.DEFAULTS``, ``catalogue.SIGNALS``,
``auth.LEVELS``, the bridges' tables); only what the code cannot say (what a key means, what
fields an event carries) is written here, beside nothing else, so a new key is one line in each
place. Regenerate after changing either::

    .venv/bin/python -m flask_sigobs.reference          # rewrites the two tables
    .venv/bin/python -m flask_sigobs.reference --check  # exit 1 if they are stale

Nothing here runs in an app: it is imported by the generator and the test only.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Iterable

#: What each ``SIGOBS_*`` key is for. A key of ``config.DEFAULTS`` missing here fails the tests.
CONFIG_DOCS: dict[str, str] = {
    "SIGOBS_SERVICE_NAME": "`service.name` of the log lines and of the Resource",
    "SIGOBS_LOG_LEVEL": "lowest level written as a log line (`debug` ... `critical`); span events are "
                        "recorded for every enabled signal regardless",
    "SIGOBS_LOG_FORMAT": "`json` for machines, `console` for people (structlog's console renderer, "
                         "control characters escaped)",
    "SIGOBS_LOG_FILE": "a file to append to (`O_APPEND`, whole lines per write: safe for several workers)",
    "SIGOBS_LOG_FLUSH_INTERVAL": "seconds `info` and `debug` lines may wait to be written together: the most a "
                                 "SIGKILL can take. `warning` and above, and every authentication event "
                                 "(`auth.*`) at any level, are written at once, with what waits, before the "
                                 "response; `0`: each line at once. See "
                                 "[What a crash can take, exactly](events.md#what-a-crash-can-take-exactly)",
    "SIGOBS_SIGNALS": "which Flask signals are observed: `default`, `all`, a list of names, or edits of the "
                      "default such as `+appcontext_pushed,-template_rendered`",
    "SIGOBS_SIGNAL_LEVELS": "per-signal log levels, e.g. `template_rendered=info,request_started=info`",
    "SIGOBS_EXCLUDED_PATHS": "URL path globs that produce no events and no span (`{static}` is the app's "
                             "static URL path); see [Excluded requests](events.md#excluded-requests)",
    "SIGOBS_REDACT_KEYS": "extra sensitive keys, added to the [built-in list](events.md#redaction); they name "
                          "URL path variables too (see [Secrets in URL paths](events.md#secrets-in-url-paths))",
    "SIGOBS_REQUEST_ID_HEADER": "the request-id header read and echoed on the response "
                                "(see [Request ids](events.md#request-ids))",
    "SIGOBS_TRUSTED_PROXIES": "how many proxies in front of the app append to `X-Forwarded-For`; `0` uses "
                              "the socket address",
    "SIGOBS_SPAN_SOURCE": "where the request span comes from: `signals` (built from the signals, see "
                          "[Speed](speed.md)) or `otel` (`opentelemetry-instrumentation-flask`, the `[otel]` "
                          "extra: without it `init_app` raises a `ConfigError` saying "
                          "`pip install 'flask-sigobs[otel]'`); an app already instrumented keeps its span "
                          "either way",
    "SIGOBS_FAST_PATH": "`auto`: spans and response headers the short way wherever the start-up check proves "
                        "it on the installed SDK and werkzeug, the public API elsewhere (one warning line "
                        "says why); `off`: the public API always (slower; one info line). See "
                        "[compatibility](compatibility.md)",
    "SIGOBS_MAX_VALUE_LENGTH": "longest string written; longer ones are cut and say by how much",
    "SIGOBS_CAPTURE_LOGGING": "route stdlib logging through the same JSON output (see "
                              "[How it works](how-it-works.md#what-it-sets-up-and-what-it-leaves-alone))",
    "SIGOBS_SPAN_EXPORTER": "`app.config` only: a `SpanExporter` instance to use instead of OTLP (tests use "
                            "the SDK's in-memory exporter)",
    "SIGOBS_OBSERVE": "blinker signals to observe without code, each as `observe()` does: comma-separated "
                      "import paths `package.module:name`, each optionally renamed with `=event.name` "
                      "(`shop.signals:order_placed=shop.order_placed`). See "
                      "[Signals named in configuration](#signals-named-in-configuration)",
    "SIGOBS_AUTH_SIGNALS": "the same syntax; each signal observed as an authentication event (`auth.<name>`, "
                           "level and `enduser.id` by [the rule](events.md#configured-auth-signals), client "
                           "address, user agent): how an app's own login signals, or a vendored copy of "
                           "Flask-Login's, are seen",
    "SIGOBS_AUDIT": "the audit trail of auth decisions ([docs/audit.md](audit.md)); `false`: off, "
                    "at no cost",
    "SIGOBS_AUDIT_URL": "where the rows go: an SQLAlchemy URL (`postgresql+psycopg://...` needs "
                        "`flask-sigobs[postgresql]`); also what `sigobs audit` reads",
    "SIGOBS_AUDIT_KEY": "the HMAC key of the hash chain (and of the protected hashes); without it "
                        "the chain is plain SHA-256. `sigobs audit verify` reads it from the "
                        "environment",
    "SIGOBS_AUDIT_JOURNAL": "the directory of the journals (one per process) where rows wait for "
                            "the database",
    "SIGOBS_AUDIT_JOURNAL_MAX": "bytes a process's journal may hold waiting for the database; "
                                "beyond, rows are refused, counted and reported",
    "SIGOBS_AUDIT_FLUSH_INTERVAL": "seconds between the writer thread's batches (and so the delay "
                                   "of brute-force detection)",
    "SIGOBS_AUDIT_MAX_FAILURES": "failed logins per window (per user, per address, per both) that "
                                 "raise `auth.login_fail_max` and lock for the window; `0`: "
                                 "detection off",
    "SIGOBS_AUDIT_UNKNOWN_USERS": "a user name that matches no account (`reason=\"unknown_user\"`):"
                                  " `hash` (keyed), `keep`, or `drop`",
    "SIGOBS_AUDIT_MAX_DATA": "bytes of the sender's keyword data (JSON) kept in a row",
    "SIGOBS_SPAN_EVENTS": "`false`: events are not added to the request's span as span events (a "
                          "team that reads them from its log store); the error status, the "
                          "exception and `enduser.id` still are",
    "SIGOBS_LOGS_EXPORTER": "`otlp`: every logged event (and the app's own lines) as an OTLP log "
                            "record with its `event_name`; `console`; `none`; or, in `app.config`, "
                            "a `LogExporter` instance. See [docs/signals.md](signals.md)",
    "SIGOBS_METRICS_EXPORTER": "`otlp`: `http.server.request.duration`, "
                               "`http.server.active_requests` and `sigobs.auth.events` over OTLP; "
                               "`console`; `none`; or, in `app.config`, a `MetricExporter` "
                               "instance. See [docs/signals.md](signals.md)",
}

#: How a default reads where its value alone would mislead (``None`` means something per key).
CONFIG_DEFAULT_TEXT: dict[str, str] = {
    "SIGOBS_SERVICE_NAME": "`OTEL_SERVICE_NAME`, else the app's name",
    "SIGOBS_LOG_FILE": "unset: standard output",
    "SIGOBS_SIGNAL_LEVELS": "each signal's level in the [event catalogue](events.md)",
    "SIGOBS_SPAN_EXPORTER": "unset",
    "SIGOBS_LOGS_EXPORTER": "`OTEL_LOGS_EXPORTER`, else `none`",
    "SIGOBS_METRICS_EXPORTER": "`OTEL_METRICS_EXPORTER`, else `none`",
    "SIGOBS_AUDIT_URL": "`sqlite:///<instance folder>/sigobs-audit.db`",
    "SIGOBS_AUDIT_KEY": "unset",
    "SIGOBS_AUDIT_JOURNAL": "`<instance folder>/sigobs-audit-journal`",
    "SIGOBS_AUDIT_JOURNAL_MAX": "`67108864` (64 MiB)",
}

_REQUEST = "`http.request.method`, `url.path`, `http.route`"

#: The fields each Flask signal's event carries (besides those of every line, see events.md).
FLASK_FIELDS: dict[str, str] = {
    "appcontext_pushed": "",
    "request_started": f"{_REQUEST}, `url.query` (redacted), `client.address`, `user_agent.original`",
    "before_render_template": "`template.name`",
    "template_rendered": "`template.name` (never the context values)",
    "message_flashed": "`flask.flash.category`",
    "got_request_exception": "`exception.type`, `exception.message`, `exception.stacktrace` (text), "
                             "`exception.frames` (list of `{file, line, function}`, log line only), "
                             f"{_REQUEST}; the span gets status ERROR and an `exception` event",
    "request_finished": "the access line: the request fields plus `http.response.status_code`, `duration_ms`, "
                        "`http.response.body.size` (when known), `enduser.id` (when known); level `error` "
                        "for a 5xx. One per request, also when Flask never sends the signal (an "
                        "`after_request` function or the session save raised, or `PROPAGATE_EXCEPTIONS` let "
                        "an exception out): then status 500, at `error`",
    "request_tearing_down": "`exception.type` when the request failed",
    "appcontext_tearing_down": "`exception.type` when it failed",
    "appcontext_popped": "",
}

_AUTH = "`enduser.id`, `client.address`, `user_agent.original`"

#: What each of flask-sigobs' own auth events says, besides its signal's own ``doc``.
AUTH_NOTES: dict[str, str] = {
    "login_succeeded": "names the request's user (see [Who made the request](#who-made-the-request-enduserid))",
    "login_failed": "its `enduser.id` is who was tried, on the event only, never the request's",
    "logged_out": "names the request's user",
    "access_denied": "names the request's user: a known user asked",
}

#: Flask-Login's events: what each means (its fields are every auth event's).
FLASK_LOGIN_NOTES: dict[str, str] = {
    "user_logged_in": "`login_user()` succeeded",
    "user_logged_out": "`logout_user()`",
    "user_loaded_from_cookie": "\"remember me\" restored the user",
    "user_loaded_from_request": "a `request_loader` (API key, token) loaded the user",
    "user_login_confirmed": "`confirm_login()`: a stale session refreshed",
    "user_unauthorized": "a `login_required` view without a user",
    "user_needs_refresh": "a `fresh_login_required` view with a stale session",
    "session_protected": "session protection acted; fires on ordinary anonymous traffic with a session, "
                         "so a span event only at the default `SIGOBS_LOG_LEVEL`",
}

#: Flask-Security-Too's events: what each means; its fields are every auth event's plus the keyword
#: data its bridge keeps (``bridges.flask_security.SIGNALS``).
FLASK_SECURITY_NOTES: dict[str, str] = {
    "user_authenticated": "a login (or a registration, a password change that logs in): `authn_via` is "
                          "`[\"password\"]`, `[\"register\"]`, `[\"change\"]`, ...",
    "user_failed_authn": "a known user and a wrong credential: `auth_type` (`password`, `passcode`, "
                         "`passkey`, `code`), `tfa` (a second factor failed); on the event only",
    "user_unauthenticated": "a protected view asked for without authentication (no user: no `enduser.id`)",
    "user_registered": "a new user (never the form: its password is in it)",
    "user_not_registered": "a registration for an identity that exists",
    "user_confirmed": "an email address confirmed",
    "confirm_instructions_sent": "confirmation mail sent (never its token)",
    "login_instructions_sent": "passwordless login mail sent (never its token)",
    "password_reset": "a password reset through a reset link",
    "password_changed": "a password changed by its user",
    "reset_password_instructions_sent": "reset mail sent; anyone may ask it for anyone, so its user is "
                                        "not who asked",
    "tf_code_confirmed": "a second-factor code accepted (`user_authenticated` follows)",
    "tf_profile_changed": "the second-factor method changed",
    "tf_security_token_sent": "a second-factor code sent (`method`, never the code)",
    "tf_disabled": "the second factor turned off",
    "us_security_token_sent": "a unified sign-in code sent (`method`, never the code)",
    "us_profile_changed": "the unified sign-in methods changed",
    "wan_registered": "a WebAuthn key registered",
    "wan_deleted": "a WebAuthn key deleted",
    "change_email_instructions_sent": "email change mail sent",
    "change_email_confirmed": "an email change confirmed",
    "username_recovery_email_sent": "user name recovery mail sent",
    "username_changed": "a user name changed",
    "refresh_tracker_created": "a session refresh tracker created",
    "refresh_tracker_revoked": "a session refresh tracker revoked",
}

CONFIG_PAGE = "configuration.md"
EVENTS_PAGE = "events.md"
MARKERS = {
    CONFIG_PAGE: ("<!-- reference:config:start", "<!-- reference:config:end -->"),
    EVENTS_PAGE: ("<!-- reference:events:start", "<!-- reference:events:end -->"),
}
_GENERATED = " (generated by `python -m flask_sigobs.reference`: edit flask_sigobs/reference.py) -->"
REGENERATE = ".venv/bin/python -m flask_sigobs.reference"


def _level(level: int) -> str:
    return logging.getLevelName(level).lower()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(key: str, value: Any) -> str:
    if key in CONFIG_DEFAULT_TEXT:
        return CONFIG_DEFAULT_TEXT[key]
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def config_keys() -> dict[str, Any]:
    """Every configuration key and its default, as the code has them."""
    from . import config

    return dict(config.DEFAULTS)


def config_table() -> str:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key, value in config_keys().items():
        meaning = CONFIG_DOCS.get(key, f"**not documented**: add it to `CONFIG_DOCS` in flask_sigobs/reference.py")
        rows.append(f"| `{key}` | {_cell(_default(key, value))} | {_cell(meaning)} |")
    return "\n".join(rows)


EVENT_TITLES = (
    "Flask's signals",
    "flask-sigobs' authentication signals (`flask_sigobs.auth`), always on",
    "Flask-Login's signals, when it is installed",
    "Flask-Security-Too's signals, when it is installed",
    "Signals you name",
)


def event_rows() -> dict[str, list[tuple[str, str, str, str, str]]]:
    """(event, level, when it is on, what it means, its fields) for every event, by source."""
    from . import auth, catalogue
    from .bridges import flask_login, flask_security

    flask_rows = [(f"flask.{name}", _level(spec.level), "yes" if spec.default_on else "no", "",
                   FLASK_FIELDS.get(name, "**not documented**: add it to `FLASK_FIELDS` in flask_sigobs/reference.py"))
                  for name, spec in catalogue.SIGNALS.items()]
    auth_rows = []
    for signal, level in auth.LEVELS.items():
        doc = (getattr(signal, "__doc__", None) or "").strip()
        note = AUTH_NOTES.get(signal.name, "")
        names = "names the request's user" if signal in auth.IDENTIFIES else ""
        auth_rows.append((f"auth.{signal.name}", _level(level), "always",
                          "; ".join(part for part in (doc.rstrip("."), note or names) if part),
                          f"{_AUTH}, the sender's keyword data"))
    login_rows = [(f"auth.{name}", _level(level), "with Flask-Login",
                   "; ".join(part for part in (FLASK_LOGIN_NOTES.get(name, "**not documented**: add it to "
                                                                   "`FLASK_LOGIN_NOTES` in flask_sigobs/reference.py"),
                                               "names the request's user" if identifies else "") if part),
                   _AUTH)
                  for name, (level, identifies) in flask_login.SIGNALS.items()]
    security_rows = []
    for name, (level, identifies, keep) in flask_security.SIGNALS.items():
        meaning = "; ".join(part for part in (
            FLASK_SECURITY_NOTES.get(name, "**not documented**: add it to `FLASK_SECURITY_NOTES` in "
                                           "flask_sigobs/reference.py"),
            "names the request's user" if identifies else "") if part)
        security_rows.append((f"auth.{name}", _level(level), "with Flask-Security-Too", meaning,
                              ", ".join([_AUTH] + [f"`{k}`" for k in keep])))
    configured = [
        ("`auth.<name>`, or `=event.name`", "by [its name](#configured-auth-signals)",
         "listed in `SIGOBS_AUTH_SIGNALS`", "an app's own login signals, or a vendored Flask-Login's",
         f"{_AUTH}, the sender's keyword data (redacted)"),
        ("the signal's name, or `=event.name`", "info", "listed in `SIGOBS_OBSERVE`",
         "any blinker signal, as `observe()` (the next row) makes it", "as the next row"),
        ("your signal's name, or `event=`", "`level=` (info)", "when observed with `observe()`",
         "any blinker signal", "the sender's keyword data, `signal.sender` when the sender is not the app, "
         "`enduser.id` when a `user` is passed (on the event: a custom signal never names the request's user)"),
    ]
    return dict(zip(EVENT_TITLES, (flask_rows, auth_rows, login_rows, security_rows, configured)))


def event_names() -> list[str]:
    """The name of every event the code itself can send (not the configured or custom ones)."""
    return [row[0] for rows in list(event_rows().values())[:-1] for row in rows]


def events_table() -> str:
    parts = []
    for index, (title, rows) in enumerate(event_rows().items()):
        # Flask's signals: on or off by default; the bridges' and our own: always on, so no column;
        # the signals you name: on when named.
        flask, named = index == 0, index == len(EVENT_TITLES) - 1
        heads = (["event", "level", "on by default", "fields"] if flask else
                 ["event", "level", "when", "what it says", "fields"] if named else
                 ["event", "level", "what it says", "fields"])
        parts += [f"## {title}\n", "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        for event, level, on, meaning, fields in rows:
            name = event if event.startswith(("`", "the ", "your ")) else f"`{event}`"
            cells = ([name, level, on, fields] if flask else [name, level, on, meaning, fields] if named else
                     [name, level, meaning, fields])
            parts.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        parts.append("")
    return "\n".join(parts).rstrip()


TABLES = {CONFIG_PAGE: config_table, EVENTS_PAGE: events_table}


def render(page: str, text: str) -> str:
    """``text`` with the generated table of ``page`` between its markers."""
    start, end = MARKERS[page]
    head, found, rest = text.partition(start)
    if not found or end not in rest:
        raise ValueError(f"docs/{page} has lost its markers {start!r} ... {end!r}: put them back "
                         f"where the generated table goes")
    _, _, tail = rest.partition(end)
    return f"{head}{start}{_GENERATED}\n{TABLES[page]()}\n{end}{tail}"


def stale(docs: Path) -> list[str]:
    """The pages under ``docs`` whose generated tables differ from what the code says."""
    return [page for page in TABLES
            if render(page, (docs / page).read_text(encoding="utf-8")) != (docs / page).read_text(encoding="utf-8")]


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flask_sigobs.reference", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, default=Path(__file__).resolve().parent.parent / "docs",
                        help="the docs folder (default: the repository's)")
    parser.add_argument("--check", action="store_true", help="only say whether the tables are current")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.check:
        pages = stale(args.docs)
        for page in pages:
            print(f"docs/{page} is stale: run {REGENERATE}", file=sys.stderr)
        return 1 if pages else 0
    for page in TABLES:
        path = args.docs / page
        old = path.read_text(encoding="utf-8")
        new = render(page, old)
        if new != old:
            path.write_text(new, encoding="utf-8")
            print(f"wrote docs/{page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
