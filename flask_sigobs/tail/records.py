"""What a log line is, once parsed: a dict, and the handful of facts every part asks of it.

Parsing is the one step every mode pays for on every line it cannot skip, so it is orjson
straight on the bytes, and only a line that fails is looked at again (invalid UTF-8 gets a
second chance, decoded with replacement characters, so a line with one bad byte still renders
as the event it is). Anything that is not a JSON object is "raw": shown marked, never dropped.
"""

from __future__ import annotations

from typing import Any

from orjson import JSONDecodeError, loads

Record = dict[str, Any]

# Keys written by flask-sigobs (see DESIGN.md): OpenTelemetry semantic conventions throughout.
TIMESTAMP = "timestamp"
LEVEL = "level"
EVENT = "event"
TRACE_ID = "trace_id"
SPAN_ID = "span_id"
REQUEST_ID = "request.id"
METHOD = "http.request.method"
ROUTE = "http.route"
PATH = "url.path"
QUERY = "url.query"
STATUS = "http.response.status_code"
DURATION = "duration_ms"
USER = "enduser.id"
CLIENT = "client.address"
USER_AGENT = "user_agent.original"
EXC_TYPE = "exception.type"
EXC_MESSAGE = "exception.message"

REQUEST_FINISHED = "flask.request_finished"
REQUEST_STARTED = "flask.request_started"
GOT_EXCEPTION = "flask.got_request_exception"

LOGIN_OK = ("auth.login_succeeded", "auth.user_logged_in")
LOGIN_FAILED = "auth.login_failed"
ACCESS_DENIED = "auth.access_denied"

# Level names as structlog, stdlib logging and the usual JSON loggers spell them.
LEVEL_RANK: dict[str, int] = {
    "trace": 5, "debug": 10, "info": 20, "notice": 25, "warning": 30, "warn": 30,
    "error": 40, "exception": 40, "err": 40, "critical": 50, "fatal": 50, "crit": 50,
    "alert": 55, "emergency": 60, "emerg": 60,
}
WARNING = 30


def parse(line: bytes) -> Record | None:
    """The line as a dict, or None when it is not a JSON object (then it is shown raw)."""
    try:
        value = loads(line)
    except JSONDecodeError:
        if not line.lstrip()[:1] == b"{":
            return None
        try:  # one bad byte should not hide the event: retry with replacement characters
            value = loads(line.decode("utf-8", "replace"))
        except JSONDecodeError:
            return None
    return value if type(value) is dict else None


def level_rank(record: Record) -> int | None:
    """The record's level as a number (None when it has none we know)."""
    level = record.get(LEVEL)
    if level is None:
        level = record.get("severity", record.get("levelname"))
    if type(level) is not str:
        return None
    rank = LEVEL_RANK.get(level)
    if rank is None:
        rank = LEVEL_RANK.get(level.lower())
    return rank


def request_key(record: Record) -> str | None:
    """What ties a line to its request: ``request.id``, else the trace id."""
    key = record.get(REQUEST_ID)
    if type(key) is str and key:
        return key
    key = record.get(TRACE_ID)
    if type(key) is str and key:
        return "t:" + key
    return None


def has_exception(record: Record) -> bool:
    return EXC_TYPE in record or "exception" in record or record.get(EVENT) == GOT_EXCEPTION


def status_of(record: Record) -> int | None:
    value = record.get(STATUS)
    if type(value) is int:
        return value
    if type(value) is str and value.isdigit():
        return int(value)
    return None


def lookup(record: Record, key: str, missing: object) -> Any:
    """A flat key first (``http.route`` is one key in our lines), then a path into nested JSON
    (``exception.0.exc_type``), so ``--where`` and ``--fields`` reach both shapes."""
    value = record.get(key, missing)
    if value is not missing or "." not in key:
        return value
    node: Any = record
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return missing
    return node
