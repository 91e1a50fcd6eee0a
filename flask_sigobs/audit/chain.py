"""Tamper evidence: each row's hash covers the row and the hash of its writer's previous row.

``hash = HMAC-SHA256(SIGOBS_AUDIT_KEY, previous hash + the row's columns)``, or plain SHA-256 when
no key is set (then the chain shows accidents and clumsy edits, but someone who can write to the
database can recompute it: set the key). ``verify`` walks each writer's rows in ``seq`` order and
names the first that was changed, removed, inserted or reordered; ``purge`` deletes old rows and
leaves a checkpoint (the last deleted row's seq and hash, itself MAC'd) where the chain resumes.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Iterator

import orjson

from .store import COLUMNS, Store

_SELECT = "SELECT id, writer, seq, hash, " + ", ".join(COLUMNS) + " FROM sigobs_audit"


class Chainer:
    def __init__(self, key: bytes | None) -> None:
        self.key = key
        # The keyed state made once and copied for each row: hmac.new pads the key every time.
        self._start = hmac.new(key, digestmod=hashlib.sha256) if key else hashlib.sha256()

    def row_hash(self, previous: str, writer: str, seq: int, values: tuple[Any, ...]) -> str:
        digest = self._start.copy()
        digest.update(previous.encode() + b"\n" + orjson.dumps([writer, seq, *values]))
        return digest.hexdigest()

    def checkpoint_mac(self, writer: str, seq: int, hash_: str, time: str) -> str:
        message = f"checkpoint\n{writer}\n{seq}\n{hash_}\n{time}".encode()
        if self.key:
            return hmac.new(self.key, message, hashlib.sha256).hexdigest()
        return hashlib.sha256(message).hexdigest()

    def fingerprint(self) -> str:
        """Names the key (or its absence) without giving it away: stored in the database's meta, so
        ``verify`` with the wrong key says so instead of calling every row broken."""
        if not self.key:
            return "sha256"
        return "hmac-sha256:" + hmac.new(self.key, b"sigobs-audit key fingerprint", hashlib.sha256).hexdigest()[:16]


@dataclass
class Break:
    id: int | None
    writer: str
    seq: int | None
    problem: str

    def __str__(self) -> str:
        where = f"row id {self.id}" if self.id is not None else "the end of the trail"
        return f"{where} (writer {self.writer}, seq {self.seq}): {self.problem}"


@dataclass
class Report:
    rows: int
    writers: int
    broken: Break | None


def verify(store: Store, chainer: Chainer) -> Report:
    """Check every writer's chain; the first break in id order, or None."""
    fingerprint = store.meta("key")
    if fingerprint is not None and fingerprint != chainer.fingerprint():
        wanted = "no key" if fingerprint == "sha256" else "a key (SIGOBS_AUDIT_KEY)"
        raise ValueError(f"this trail was written with {wanted}; the key given is not that one")
    heads = {w: (s, h) for w, s, h in store.query("SELECT writer, seq, hash FROM sigobs_audit_writer")}
    starts: dict[str, tuple[int, str]] = {}
    for writer, seq, hash_, time, mac in store.query("SELECT writer, seq, hash, time, mac FROM sigobs_audit_checkpoint"):
        if not hmac.compare_digest(mac, chainer.checkpoint_mac(writer, seq, hash_, time)):
            return Report(0, 0, Break(None, writer, seq, "its purge checkpoint was changed"))
        starts[writer] = (seq, hash_)
    breaks: list[Break] = []
    count = 0
    state: dict[str, tuple[int, str, int]] = {}  # writer -> (seq, hash, id) of its last good row
    done: set[str] = set()
    for row in store.iterate(_SELECT + " ORDER BY writer, seq, id"):
        count += 1
        row_id, writer, seq, hash_ = row[0], row[1], row[2], row[3]
        if writer in done:
            continue
        previous_seq, previous_hash, previous_id = state.get(writer) or (*starts.get(writer, (0, "")), 0)
        problem = None
        if seq != previous_seq + 1:
            problem = (f"expected seq {previous_seq + 1}: rows removed" if seq > previous_seq + 1
                       else "a second row with this seq: a row inserted")
        elif row_id <= previous_id:
            problem = "out of order: its id is before the previous row's"
        elif not hmac.compare_digest(hash_, chainer.row_hash(previous_hash, writer, seq, tuple(row[4:]))):
            problem = "its hash does not match: the row was changed, or inserted"
        if problem:
            breaks.append(Break(row_id, writer, seq, problem))
            done.add(writer)
            continue
        state[writer] = (seq, hash_, row_id)
    for writer, (seq, hash_) in heads.items():
        if writer in done:
            continue
        last_seq, last_hash, _ = state.get(writer) or (*starts.get(writer, (0, "")), 0)
        if (last_seq, last_hash) != (seq, hash_):
            breaks.append(Break(None, writer, last_seq + 1, f"the writer's last row (seq {seq}) is missing: rows removed"))
    for writer in state:
        if writer not in heads and writer not in done:
            breaks.append(Break(state[writer][2], writer, state[writer][0], "a writer the trail does not know: rows inserted"))
    first = min(breaks, key=lambda b: (b.id is None, b.id or 0)) if breaks else None
    return Report(count, len(set(state) | set(heads)), first)


def purge(store: Store, chainer: Chainer, before: str) -> int:
    """Delete rows older than ``before`` (ISO time), leaving a checkpoint for each writer's chain.

    A writer's rows are cut at its last row older than ``before`` and everything of it before that:
    its chain stays whole from the checkpoint on."""
    deleted = 0
    with store.transaction():
        cuts = store.query("SELECT writer, MAX(seq) FROM sigobs_audit WHERE time < :t GROUP BY writer", {"t": before})
        for writer, seq in cuts:
            hash_, time = store.query("SELECT hash, time FROM sigobs_audit WHERE writer = :w AND seq = :s",
                                      {"w": writer, "s": seq})[0]
            store.execute("INSERT INTO sigobs_audit_checkpoint (writer, seq, hash, time, mac) "
                          "VALUES (:w, :s, :h, :t, :m) ON CONFLICT (writer) DO UPDATE SET seq = excluded.seq, "
                          "hash = excluded.hash, time = excluded.time, mac = excluded.mac",
                          {"w": writer, "s": seq, "h": hash_, "t": time,
                           "m": chainer.checkpoint_mac(writer, seq, hash_, time)})
            deleted += store.execute("DELETE FROM sigobs_audit WHERE writer = :w AND seq <= :s",
                                     {"w": writer, "s": seq})
    return deleted


def rows_of(store: Store, writer: str) -> Iterator[tuple[Any, ...]]:
    return store.iterate(_SELECT + " WHERE writer = :w ORDER BY seq", {"w": writer})
