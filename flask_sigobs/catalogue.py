"""The Flask signals flask-sigobs knows, with the level and default state of each.

The defaults keep a request to one log line at ``info`` (the ``flask.request_finished`` access
line), while every enabled signal still becomes a span event: span events are cheap and are
read per trace, log lines are paid for in storage and read by people.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import flask


class SignalSpec(NamedTuple):
    signal: object
    level: int
    default_on: bool


SIGNALS: dict[str, SignalSpec] = {
    "appcontext_pushed": SignalSpec(flask.appcontext_pushed, logging.DEBUG, False),
    "request_started": SignalSpec(flask.request_started, logging.DEBUG, True),
    "before_render_template": SignalSpec(flask.before_render_template, logging.DEBUG, False),
    "template_rendered": SignalSpec(flask.template_rendered, logging.DEBUG, True),
    "message_flashed": SignalSpec(flask.message_flashed, logging.INFO, True),
    "got_request_exception": SignalSpec(flask.got_request_exception, logging.ERROR, True),
    "request_finished": SignalSpec(flask.request_finished, logging.INFO, True),
    "request_tearing_down": SignalSpec(flask.request_tearing_down, logging.DEBUG, False),
    "appcontext_tearing_down": SignalSpec(flask.appcontext_tearing_down, logging.DEBUG, False),
    "appcontext_popped": SignalSpec(flask.appcontext_popped, logging.DEBUG, False),
}

DEFAULT_ON = frozenset(name for name, spec in SIGNALS.items() if spec.default_on)

LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
               logging.ERROR: "error", logging.CRITICAL: "critical"}
