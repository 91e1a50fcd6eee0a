"""Writing: batched, UTF-8, and quiet when the reader goes away.

Output is written one batch at a time (one ``write`` per read batch, not per line), straight
to the binary stream. In follow mode and on pipes each batch is flushed, so a line appears as
soon as it is read. A closed pipe (``sigobs tail ... | head``) surfaces as ``BrokenPipeError``
and is handled once, at the top, by :func:`silence_stdout`.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO


class Output:
    """The rendered text (or original lines) to standard output, notices to standard error."""

    def __init__(self, stream: BinaryIO | None = None, errors: BinaryIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout.buffer
        self.errors = errors if errors is not None else sys.stderr.buffer

    def text(self, lines: list[str]) -> None:
        if lines:
            self.stream.write(("\n".join(lines) + "\n").encode("utf-8", "replace"))

    def raw(self, lines: list[bytes]) -> None:
        if lines:
            self.stream.write(b"\n".join(lines) + b"\n")

    def write(self, data: bytes) -> None:
        self.stream.write(data)

    def write_errors(self, data: bytes) -> None:
        self.errors.write(data)
        self.errors.flush()

    def error_text(self, lines: list[str]) -> None:
        if lines:
            self.errors.write(("\n".join(lines) + "\n").encode("utf-8", "replace"))
            self.errors.flush()

    def notice(self, message: str) -> None:
        """A message about the reading itself (a rotated file), never mixed into the output."""
        from .terminal import escape

        self.errors.write(f"sigobs tail: {escape(message)}\n".encode("utf-8", "replace"))
        self.errors.flush()

    def flush(self) -> None:
        self.stream.flush()


def silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null, so the interpreter's final flush of the
    remaining buffer does not print an ``Exception ignored`` message on the way out."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
