"""Stack traces, compacted: the app's own frames first, the libraries' frames folded to a count.

At 2 a.m. the frame that matters is the app's: the line of the view that raised. A Flask
traceback is mostly Flask's and Werkzeug's dispatch machinery, so those frames are counted
("+ 4 library frames: flask"), not listed, unless ``-v`` asks for every frame. Exceptions
arrive in three shapes and all three are read here: our ``exception.frames`` list, structlog's
dict tracebacks under ``exception`` (the app's own ``log.exception``), and plain traceback text.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from .records import Record

_FRAME_TEXT = re.compile(r'^\s*File "(?P<file>[^"]*)", line (?P<line>\d+), in (?P<function>.*)$', re.MULTILINE)
_LIBRARY_MARKERS = ("/site-packages/", "/dist-packages/", "\\site-packages\\", "\\dist-packages\\")
_STDLIB = re.compile(r"[/\\]lib[/\\]python\d(\.\d+)?[/\\]")


@dataclass
class Frame:
    file: str
    line: Any
    function: str

    @property
    def library(self) -> str | None:
        """The library a frame belongs to (``flask``, ``python`` for the standard library), or
        None for the app's own code."""
        path = self.file
        for marker in _LIBRARY_MARKERS:
            at = path.find(marker)
            if at >= 0:
                rest = path[at + len(marker):]
                return re.split(r"[/\\.]", rest, maxsplit=1)[0] or "?"
        if path.startswith("<") or _STDLIB.search(path):
            return "python"
        return None

    def where(self, cwd: str) -> str:
        path = self.file
        for marker in _LIBRARY_MARKERS:
            at = path.find(marker)
            if at >= 0:
                path = path[at + len(marker):]
                break
        else:
            if cwd and path.startswith(cwd + os.sep):
                path = path[len(cwd) + 1:]
        return f"{path}:{self.line}"


@dataclass
class Failure:
    """One exception: its type, message and frames (outermost first, as Python lists them)."""

    type: str
    message: str
    frames: list[Frame] = field(default_factory=list)


def _frames_from_dicts(items: Any, file_key: str, line_key: str, function_key: str) -> list[Frame]:
    frames: list[Frame] = []
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                frames.append(Frame(str(item.get(file_key, "?")), item.get(line_key, "?"),
                                    str(item.get(function_key, "?"))))
    return frames


def _from_text(text: str) -> Failure:
    frames = [Frame(m.group("file"), m.group("line"), m.group("function").strip())
              for m in _FRAME_TEXT.finditer(text)]
    last = ""
    for line in reversed(text.rstrip().splitlines()):
        if line.strip() and not line.startswith((" ", "\t")):
            last = line.strip()
            break
    kind, _, message = last.partition(": ")
    return Failure(kind or "Exception", message, frames)


def failures(record: Record) -> list[Failure]:
    """Every exception the record describes, in any of the three shapes."""
    found: list[Failure] = []
    if "exception.type" in record or "exception.frames" in record or "exception.stacktrace" in record:
        frames = _frames_from_dicts(record.get("exception.frames"), "file", "line", "function")
        text = record.get("exception.stacktrace")
        if not frames and isinstance(text, str):
            frames = _from_text(text).frames
        found.append(Failure(str(record.get("exception.type", "Exception")),
                             str(record.get("exception.message", "")), frames))
    value = record.get("exception")
    if isinstance(value, list):  # structlog's dict tracebacks, one entry per chained exception
        for item in value:
            if isinstance(item, dict):
                found.append(Failure(str(item.get("exc_type", "Exception")), str(item.get("exc_value", "")),
                                     _frames_from_dicts(item.get("frames"), "filename", "lineno", "name")))
    elif isinstance(value, str) and value.strip():
        found.append(_from_text(value))
    return found


def compact(failure: Failure, *, verbose: bool, cwd: str) -> list[tuple[str, str]]:
    """Lines for a stack trace as (kind, text) pairs, kind being ``app``, ``lib`` or ``fold``,
    so the renderer can colour them. Innermost app frame first: where it broke."""
    if verbose:
        return [("lib" if f.library else "app", f"{f.where(cwd)} in {f.function}")
                for f in reversed(failure.frames)]
    out: list[tuple[str, str]] = []
    libraries: dict[str, int] = {}
    for frame in reversed(failure.frames):
        lib = frame.library
        if lib is None:
            out.append(("app", f"{frame.where(cwd)} in {frame.function}"))
        else:
            libraries[lib] = libraries.get(lib, 0) + 1
    if libraries:
        total = sum(libraries.values())
        names = ", ".join(sorted(libraries, key=lambda name: -libraries[name]))
        noun = "frame" if total == 1 else "frames"
        if not out:  # no app frame at all: the innermost library frame is still worth a line
            innermost = failure.frames[-1]
            out.append(("lib", f"{innermost.where(cwd)} in {innermost.function}"))
            total -= 1
            noun = "frame" if total == 1 else "frames"
            if total:
                out.append(("fold", f"+ {total} more library {noun}: {names}"))
        else:
            out.append(("fold", f"+ {total} library {noun}: {names}"))
    return out
