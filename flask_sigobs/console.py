"""``SIGOBS_LOG_FORMAT=console``: structlog's console renderer, made safe for a terminal.

JSON output escapes control characters by construction; a console line does not, so a user
agent carrying ``ESC[2J`` would clear the reader's screen. Values are escaped first.
"""

from __future__ import annotations

import re
from typing import Any

import structlog

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MULTILINE_KEYS = ("exception.stacktrace", "exception")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escape(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _escape_value(value: Any) -> Any:
    if isinstance(value, str):
        return _escape(value)
    if isinstance(value, (list, tuple)):
        return [_escape_value(v) for v in value]
    if isinstance(value, dict):
        return {_escape(str(k)): _escape_value(v) for k, v in value.items()}
    return value


class ConsoleLines:
    def __init__(self, colors: bool) -> None:
        self._render = structlog.dev.ConsoleRenderer(colors=colors)

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> str:
        event_dict.pop("exception.frames", None)  # the text stack trace says it for people
        clean = {_escape(str(k)): _escape_value(v) for k, v in event_dict.items() if k not in _MULTILINE_KEYS}
        for key in _MULTILINE_KEYS:  # keep a stack trace's line breaks, nothing else
            if isinstance(event_dict.get(key), str):
                clean[key] = _CONTROL_BUT_LINES.sub(lambda m: f"\\x{ord(m.group()):02x}", event_dict[key])
        return self._render(logger, method_name, clean)
