"""The terminal: whether to colour, the colours, and escaping whatever came from a log line.

A log line is written by whoever sent the request: a User-Agent of ``ESC[2J`` or an OSC title
sequence in a query string must reach the screen as visible text, never as a control sequence.
So every string that came from a log line passes through :func:`escape` before it is written,
and the only escape sequences on the screen are the palette's own. The fast path is one
``str.isprintable()`` (C speed) per value; only a value that fails it is rewritten.
"""

from __future__ import annotations

import os
from typing import TextIO

# C0, DEL and C1 controls; bidirectional overrides and isolates (they reorder what the reader
# sees: "Trojan Source"); line and paragraph separators (they break a line where none shows).
_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]}
_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})
_ESCAPES.update({c: f"\\u{c:04x}" for c in [0x061C, 0x200E, 0x200F, 0x2028, 0x2029,
                                             *range(0x202A, 0x202F), *range(0x2066, 0x206A)]})


def escape(text: str) -> str:
    """The text with every control character shown as an escape (``\\x1b``), never raw."""
    if text.isprintable():
        return text
    return text.translate(_ESCAPES)


def escape_multiline(text: str) -> str:
    """As :func:`escape`, but keeping line breaks (for text that is meant to be multi-line)."""
    return "\n".join(escape(part) for part in text.split("\n"))


def use_colour(choice: str, stream: TextIO) -> bool:
    """``--color=always|never|auto``; auto means a terminal and no ``NO_COLOR`` (no-color.org:
    set and not empty), and a ``TERM`` that is not ``dumb``."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Palette:
    """SGR sequences by meaning; all empty strings when colour is off, so rendering code is the
    same either way (an f-string with empty parts costs nothing)."""

    def __init__(self, colour: bool) -> None:
        on = colour
        self.enabled = on
        self.reset = "\x1b[0m" if on else ""
        self.dim = "\x1b[2m" if on else ""
        self.bold = "\x1b[1m" if on else ""
        self.red = "\x1b[31m" if on else ""
        self.green = "\x1b[32m" if on else ""
        self.yellow = "\x1b[33m" if on else ""
        self.blue = "\x1b[34m" if on else ""
        self.magenta = "\x1b[35m" if on else ""
        self.cyan = "\x1b[36m" if on else ""
        self.bold_red = "\x1b[1;31m" if on else ""
        self.alarm = "\x1b[1;97;41m" if on else ""  # white on red: critical
        self.underline = "\x1b[4m" if on else ""
        self.key = self.dim
        self.event = "\x1b[1m" if on else ""
        self.auth_event = "\x1b[1;35m" if on else ""
        self.trace = "\x1b[2;36m" if on else ""

    def status(self, code: int) -> str:
        if not self.enabled:
            return ""
        if code >= 500:
            return self.bold_red
        if code >= 400:
            return self.yellow
        if code >= 300:
            return self.cyan
        if code >= 200:
            return self.green
        return self.dim

    def duration(self, ms: float) -> str:
        if not self.enabled:
            return ""
        if ms >= 1000:
            return self.red
        if ms >= 300:
            return self.yellow
        return ""

    def level(self, rank: int | None) -> str:
        if not self.enabled or rank is None:
            return ""
        if rank >= 50:
            return self.alarm
        if rank >= 40:
            return self.bold_red
        if rank >= 30:
            return self.yellow
        if rank >= 20:
            return self.green
        return self.blue
