"""Where lines come from: files (read once, or followed like ``tail -F``) and standard input.

Each source hands out *blocks*: bytes holding whole lines, each ending with a newline, as many
as one large read gave. Per-block work (one write, one flush, one byte-level scan for a
filter's needle) is then paid per thousands of lines, not per line, and a block can be handed
to another process as it is. A partial last line is held until its newline arrives (follow
mode), or given as a line at the end (read once). A line longer than ``MAX_LINE`` is cut into
pieces rather than held without bound.

Following survives what log files go through, by polling ``stat`` when a file has nothing new:
rotation (the path now names another inode: finish the old file, then read the new one from
its start), truncation (the size fell below what was read: start again from the top) and a file
that does not exist yet (wait for it). Polling costs one ``stat`` per file per interval and
needs no platform-specific watcher.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import sys
import time
from collections import deque
from typing import Callable, Protocol

READ_SIZE = 1 << 20  # one read, one block: about 2,500 of our lines, and it stays in the CPU cache
MAX_BATCH = 1 << 20  # per call to read(), so a huge backlog still interleaves with ticks
MAX_LINE = 16 << 20  # a line longer than this is cut (memory stays bounded)
_WINDOW = 1 << 15  # reading a file once: where the end of a block's last line is looked for

Notice = Callable[[str], None]


class Source(Protocol):
    name: str
    done: bool

    def read(self) -> bytes:
        """A block of the complete lines available now (b"" when none)."""

    def close(self) -> None: ...


class _Lines:
    """Cuts chunks of bytes at their last newline, keeping the unfinished tail for later."""

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, chunk: bytes) -> bytes:
        if self.rest:
            chunk = self.rest + chunk
        cut = chunk.rfind(b"\n") + 1
        if cut == 0 and len(chunk) <= MAX_LINE:
            self.rest = chunk
            return b""
        if cut == 0:  # one enormous line: give it out in pieces rather than hold it all
            self.rest = b""
            return chunk + b"\n"
        self.rest = chunk[cut:]
        return chunk[:cut] if cut < len(chunk) else chunk

    def finish(self) -> bytes:
        rest, self.rest = self.rest, b""
        return rest + b"\n" if rest else b""


def _last_lines_offset(fd: int, size: int, count: int) -> int:
    """Where the last ``count`` lines of the file start (reading backwards, block by block)."""
    if count <= 0:
        return size
    position = size
    newlines = 0
    block = 1 << 16
    # a final newline ends the last line; it does not start another one
    if size:
        os.lseek(fd, size - 1, os.SEEK_SET)
        if os.read(fd, 1) == b"\n":
            newlines = -1
    while position > 0:
        step = min(block, position)
        position -= step
        os.lseek(fd, position, os.SEEK_SET)
        data = os.read(fd, step)
        index = len(data)
        while True:
            index = data.rfind(b"\n", 0, index)
            if index < 0:
                break
            newlines += 1
            if newlines >= count:
                return position + index + 1
    return 0


class FileSource:
    """One file path, read once or followed across rotation and truncation."""

    def __init__(self, path: str, *, follow: bool, last: int | None, notice: Notice) -> None:
        self.name = path
        self.follow = follow
        self.notice = notice
        self.done = False
        self.error: str | None = None
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._position = 0
        self._lines = _Lines()
        self._waiting_said = False
        self._exact = False  # a regular file read once: see _read_exact
        self._cut = 0
        self._open(last)

    def _open(self, last: int | None) -> bool:
        try:
            fd = os.open(self.name, os.O_RDONLY)
        except OSError as error:
            if self.follow and error.errno in (errno.ENOENT, errno.EACCES):
                if not self._waiting_said:
                    self.notice(f"{self.name}: {error.strerror.lower()}; waiting for it to appear")
                    self._waiting_said = True
                return False
            self.error = f"{self.name}: {error.strerror}"
            self.done = True
            return False
        info = os.fstat(fd)
        if not _is_readable_kind(info.st_mode):
            os.close(fd)
            self.error = f"{self.name}: is a directory" if _is_dir(info.st_mode) else f"{self.name}: cannot read"
            self.done = True
            return False
        self._fd = fd
        self._identity = (info.st_dev, info.st_ino)
        self._position = 0
        if last is not None and _is_regular(info.st_mode):
            self._position = _last_lines_offset(fd, info.st_size, last)
        if _is_regular(info.st_mode):
            os.lseek(fd, self._position, os.SEEK_SET)
        self._exact = not self.follow and _is_regular(info.st_mode)
        self._cut = self._position
        if self._waiting_said:
            self.notice(f"{self.name}: appeared; following it")
            self._waiting_said = False
        return True

    def read(self) -> bytes:
        if self.done:
            return b""
        if self._fd is None:
            if not self.follow or not self._open(None):
                return b""
        block = self._drain()
        if block:
            return block
        if not self.follow:
            block = self._lines.finish()
            self.close()
            self.done = True
            return block
        return self._check_replaced()

    def _drain(self) -> bytes:
        assert self._fd is not None
        if self._exact:
            block = self._read_exact(self._fd)
            if block is not None:
                return block
        out: list[bytes] = []
        total = 0
        # Up to MAX_BATCH per call, but never stop on an empty hand while the file goes on: a
        # line longer than a chunk gives nothing until its end (or MAX_LINE) is read, and an
        # empty block means "nothing more" to the caller.
        while total < MAX_BATCH or not out:
            try:
                chunk = os.read(self._fd, READ_SIZE)
            except OSError as error:
                self.notice(f"{self.name}: {error.strerror}")
                break
            if not chunk:
                break
            total += len(chunk)
            self._position += len(chunk)
            block = self._lines.feed(chunk)
            if block:
                out.append(block)
            if len(chunk) < READ_SIZE:
                break
        return out[0] if len(out) == 1 else b"".join(out)

    def read_exact_slice(self) -> tuple[str, int, int] | None:
        """Where the very block :meth:`read` would give next lies, without reading it (for a
        worker process to read), when that block is one exact ``pread`` (see
        :meth:`_read_exact`); None otherwise, and then :meth:`read` is what to call."""
        if self.done or self._fd is None or not self._exact:
            return None
        start = self._cut
        chunk_end = self._position + READ_SIZE
        try:
            if os.fstat(self._fd).st_size >= chunk_end:
                window = os.pread(self._fd, _WINDOW, chunk_end - _WINDOW)
                newline = window.rfind(b"\n") if len(window) == _WINDOW else -1
                if newline >= 0:
                    cut = chunk_end - _WINDOW + newline + 1
                    self._cut = cut
                    self._position = chunk_end
                    return self.name, start, cut - start
        except OSError:
            pass
        return None

    def _read_exact(self, fd: int) -> bytes | None:
        """For a regular file read once: the very block the chunked read below gives (the
        lines up to the last newline of the next ``READ_SIZE`` bytes), but read with one
        ``pread`` of exactly those bytes, where the chunked read pays a read and two copies (the
        held partial line joined to the chunk, the chunk cut at its last newline). The newline
        is looked for in the chunk's last bytes; when it is not there, or the chunk would be the
        file's last (a short one), or anything fails, this hands over to the chunked read for
        the rest of the file, in the same state that read would have reached, and says None."""
        start = self._cut  # the first byte not given out yet
        chunk_end = self._position + READ_SIZE  # _position: where the chunked read would read next
        try:
            if os.fstat(fd).st_size >= chunk_end:
                window = os.pread(fd, _WINDOW, chunk_end - _WINDOW)
                newline = window.rfind(b"\n") if len(window) == _WINDOW else -1
                if newline >= 0:
                    cut = chunk_end - _WINDOW + newline + 1
                    block = os.pread(fd, cut - start, start)
                    if len(block) == cut - start:
                        self._cut = cut
                        self._position = chunk_end
                        return block
            self._exact = False
            self._lines.rest = os.pread(fd, self._position - start, start) if self._position > start else b""
            os.lseek(fd, self._position, os.SEEK_SET)
        except OSError:
            self._exact = False
            self._lines.rest = b""
            self._position = start
            try:
                os.lseek(fd, start, os.SEEK_SET)
            except OSError:
                pass
        return None

    def _check_replaced(self) -> bytes:
        """Nothing new to read: has the file been rotated or truncated?"""
        assert self._fd is not None
        try:
            info = os.stat(self.name)
        except OSError:
            return b""  # renamed away and not recreated yet: keep the old one open for its tail
        if (info.st_dev, info.st_ino) != self._identity:
            block = self._drain() + self._lines.finish()
            os.close(self._fd)
            self._fd = None
            self.notice(f"{self.name}: replaced (rotated); following the new file")
            if self._open(None):
                block += self._drain()
            return block
        if _is_regular(info.st_mode) and info.st_size < self._position:
            self.notice(f"{self.name}: truncated; reading from the start")
            self._lines = _Lines()
            self._position = 0
            os.lseek(self._fd, 0, os.SEEK_SET)
            return self._drain()
        return b""

    def read_slice(self) -> tuple[str, int, int] | None:
        """Where the next block of whole lines lies, without reading it (for a worker process to
        read): only the bytes around the block's end are read, to end it at a newline. None at
        the end of the file. For a regular file read once, not followed."""
        if self.done or self._fd is None:
            return None
        size = os.fstat(self._fd).st_size
        start = self._position
        if start >= size:
            self.close()
            self.done = True
            return None
        end = min(start + READ_SIZE, size)
        while end < size:
            window = os.pread(self._fd, 1 << 16, end)
            newline = window.find(b"\n")
            if newline >= 0:
                end += newline + 1
                break
            end += len(window)
            if not window or end - start > MAX_LINE:
                break
        self._position = end
        return self.name, start, end - start

    def backlog(self) -> int:
        """Bytes left to read now (0 for what is not a regular file)."""
        if self._fd is None:
            return 0
        try:
            info = os.fstat(self._fd)
        except OSError:
            return 0
        return max(info.st_size - self._position, 0) if _is_regular(info.st_mode) else 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class StreamSource:
    """Standard input (or any pipe): read as it comes, until end of file.

    With ``-n N`` the stream is read to its end first and only its last N lines are kept
    (a pipe cannot be read backwards)."""

    def __init__(self, fd: int, *, last: int | None, name: str = "-") -> None:
        self.name = name
        self.fd = fd
        self.done = False
        self.last = last
        self._lines = _Lines()
        self._kept: deque[bytes] | None = deque(maxlen=last) if last is not None else None

    def read(self) -> bytes:
        if self.done:
            return b""
        try:
            chunk = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return b""
        except OSError as error:
            if error.errno == errno.EINTR:
                return b""
            raise
        if not chunk:
            self.done = True
            block = self._lines.finish()
            if self._kept is not None:
                self._kept.extend(block.split(b"\n")[:-1])
                block = b"".join(line + b"\n" for line in self._kept)
                self._kept = None
            return block
        block = self._lines.feed(chunk)
        if self._kept is not None:
            self._kept.extend(block.split(b"\n")[:-1])
            return b""
        return block

    def readable(self, timeout: float) -> bool:
        try:
            ready, _, _ = select.select([self.fd], [], [], timeout)
        except (OSError, ValueError):
            return True
        return bool(ready)

    def close(self) -> None:
        pass


def wait_readable(fds: list[int], timeout: float) -> None:
    """Sleep until one of the pipes has input, or the timeout passes."""
    try:
        select.select(fds, [], [], timeout)
    except (OSError, ValueError):
        time.sleep(timeout)


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def _is_dir(mode: int) -> bool:
    return stat.S_ISDIR(mode)


def _is_readable_kind(mode: int) -> bool:
    return not _is_dir(mode)


def open_sources(paths: list[str], *, follow: bool, last: int | None, notice: Notice) -> list[Source]:
    """The sources for the command line's files (``-`` or none: standard input)."""
    sources: list[Source] = []
    for path in paths or ["-"]:
        if path == "-":
            sources.append(StreamSource(sys.stdin.fileno(), last=last))
        else:
            sources.append(FileSource(path, follow=follow, last=last, notice=notice))
    return sources
