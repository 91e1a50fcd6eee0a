"""``SIGOBS_LOG_FORMAT=console``: structlog's console renderer, made safe for a terminal.

JSON output escapes control characters by construction; a console line does not, so a user
agent carrying ``ESC[2J`` would clear the reader's screen. Values are escaped first, with the
same escaping ``sigobs tail`` uses for what it shows (controls, and the bidirectional overrides
that reorder what the reader sees).
"""

from __future__ import annotations

from typing import Any

import structlog

from .tail.terminal import escape, escape_multiline

#: Stack traces keep their line breaks (structlog shows them as a block, or quoted with ``\n``).
_MULTILINE_KEYS = ("exception.stacktrace", "exception")


def _escape_value(value: Any) -> Any:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, (list, tuple)):
        return [_escape_value(v) for v in value]
    if isinstance(value, dict):
        return {escape(str(k)): _escape_value(v) for k, v in value.items()}
    return value


class ConsoleLines:
    def __init__(self, colors: bool) -> None:
        self._render = structlog.dev.ConsoleRenderer(colors=colors)

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> str:
        event_dict.pop("exception.frames", None)  # the text stack trace says it for people
        clean = {escape(str(k)): _escape_value(v) for k, v in event_dict.items() if k not in _MULTILINE_KEYS}
        for key in _MULTILINE_KEYS:  # keep a stack trace's line breaks, nothing else
            if isinstance(event_dict.get(key), str):
                clean[key] = escape_multiline(event_dict[key])
        return self._render(logger, method_name, clean)
