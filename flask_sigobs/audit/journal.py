"""The durable local journal: every audit row is in a file before the response is sent.

One process writes one journal (a run of segment files ``<writer>.<n>.journal`` in the journal
directory), one ``os.write`` per row of one JSON line: a ``write`` is in the kernel's page cache
when it returns, so the row survives the process being killed (SIGKILL included); only the
machine losing power can take it (no ``fsync``: that would cost the request milliseconds).

Each journal is held with ``flock`` by its process. A journal nobody holds belongs to a process
that is gone: any writer thread adopts it, puts its rows in the database and deletes it. The
database keeps, in the same transaction as the rows, how far each segment has been written
(``sigobs_audit_journal``), so a row is written once, whoever writes it and whenever it died.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import socket
import threading
from typing import Iterator

SUFFIX = ".journal"
_NAME = re.compile(r"(?P<writer>[A-Za-z0-9_.-]+~\d+~[0-9a-f]+)\.(?P<segment>\d+)" + re.escape(SUFFIX) + r"\Z")
_HOST_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
READ_CHUNK = 1 << 20


def new_writer_id() -> str:
    """Host, process and a random part: unique across the machines that share a database."""
    host = _HOST_CHARS.sub("-", socket.gethostname())[:40] or "host"
    return f"{host}~{os.getpid()}~{secrets.token_hex(4)}"


def parse_name(filename: str) -> tuple[str, int] | None:
    match = _NAME.match(filename)
    return (match["writer"], int(match["segment"])) if match else None


class Journal:
    """This process's journal: appended to by requests, read back by the writer thread."""

    def __init__(self, directory: str, max_backlog: int) -> None:
        self.directory = directory
        self.max_backlog = max_backlog
        self.writer_id = new_writer_id()
        self.lock = threading.Lock()
        self.fd: int | None = None
        self.segment = 0
        self.path: str | None = None
        self.size = 0  # bytes in the current segment
        self.written = 0  # bytes appended in this process's life, all segments
        self.flushed = 0  # of which the writer thread has put in the database
        self.dropped = 0  # rows refused because the backlog was full or the disk was
        self.torn = False  # a write failed half-way: the next row starts on a line of its own

    @property
    def backlog(self) -> int:
        """Bytes in the journal not yet in the database."""
        return self.written - self.flushed

    def open_segment(self) -> None:
        """Open the next segment (under ``self.lock``). Created under a temporary name, locked, then
        renamed: no other process ever sees it unlocked and takes it for an orphan."""
        os.makedirs(self.directory, exist_ok=True)
        self.segment += 1
        final = os.path.join(self.directory, f"{self.writer_id}.{self.segment}{SUFFIX}")
        temporary = final + ".new"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(temporary, final)
        old, self.fd, self.path, self.size = self.fd, fd, final, 0
        if old is not None:
            os.close(old)  # the lock of the old segment goes with it: the writer finishes it as an orphan

    def append(self, line: bytes) -> bool:
        """One row, one ``write``. False when refused (backlog full) ; raises OSError (disk full)."""
        with self.lock:
            if self.written - self.flushed + len(line) > self.max_backlog:
                self.dropped += 1
                return False
            if self.fd is None:
                self.open_segment()
            if self.torn:
                line = b"\n" + line
            try:
                done = os.write(self.fd, line)  # type: ignore[arg-type]
                while done < len(line):
                    done += os.write(self.fd, line[done:])  # type: ignore[arg-type]
            except OSError:
                self.torn = True
                self.dropped += 1
                raise
            self.torn = False
            self.size += len(line)
            self.written += len(line)
            return True

    def rotate(self, max_size: int) -> None:
        """Start a new segment once the current one is big (the writer thread finishes the old one)."""
        with self.lock:
            if self.fd is not None and self.size >= max_size:
                self.open_segment()

    def close(self) -> None:
        with self.lock:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's journal is the parent's. A new writer id, no file yet."""
        self.lock = threading.Lock()
        if self.fd is not None:
            try:
                os.close(self.fd)  # the child's copy of the parent's descriptor (and its lock)
            except OSError:
                pass
        self.fd, self.path, self.size, self.segment = None, None, 0, 0
        self.written = self.flushed = self.dropped = 0
        self.torn = False
        self.writer_id = new_writer_id()


def segments(directory: str) -> list[tuple[str, str, int]]:
    """(path, writer, segment) of every journal segment in ``directory``, oldest segment first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        parsed = parse_name(name)
        if parsed is not None:
            found.append((os.path.join(directory, name), parsed[0], parsed[1]))
    found.sort(key=lambda item: (item[1], item[2]))
    return found


def orphans(directory: str) -> list[str]:
    """The segments in ``directory`` that nobody holds: their process is gone."""
    found = []
    for path, _, _ in segments(directory):
        fd = adopt(path)
        if fd is not None:
            os.close(fd)
            found.append(path)
    return found


def adopt(path: str) -> int | None:
    """An open, locked descriptor of the segment at ``path`` when its process is gone (nobody holds
    it) and nobody has deleted it yet; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_nlink == 0:  # finished and deleted by another writer meanwhile
            raise BlockingIOError
    except OSError:
        os.close(fd)
        return None
    return fd


def read_lines(path: str, position: int) -> Iterator[tuple[int, bytes]]:
    """(end position, line) of each complete line from ``position``; a last line without its
    newline (being written, or cut by a crash) is left for later."""
    with open(path, "rb") as file:
        file.seek(position)
        rest = b""
        while True:
            chunk = file.read(READ_CHUNK)
            if not chunk:
                return
            chunk = rest + chunk
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                if end < 0:
                    break
                position += end + 1 - start
                yield position, chunk[start:end]
                start = end + 1
            rest = chunk[start:]
