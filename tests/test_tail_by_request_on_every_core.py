"""``--by-request`` on a big file, where the worker processes group the blocks of the file each on
its own: requests whose lines lie in several blocks (a long one, capped at its line limit; ones
still open at the end), late lines of a request that ended in the block before, lines ending in
``\\r``, lines that are not JSON, a small ``--max-open``, two files read in turn. The output must
be byte for byte the output of the same command in one process."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from .tail_support import ROOT, env, tail

pytestmark = pytest.mark.slow  # every core, several seconds a test: the whole suite's, not the matrix rows' core

SERIAL = ("import sys; import flask_sigobs.tail.parallel as p; p.worth_it = lambda n: False; "
          "import flask_sigobs.tail.command as c; c.worth_it = p.worth_it; "
          "from flask_sigobs.cli import main; sys.exit(main())")


def _line(second: int, event: str, rid: str, **fields: object) -> bytes:
    record = {"timestamp": f"2026-11-{25 + second // 86400:02d}T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:"
                           f"{second % 60:02d}.000000Z", "level": "info", "event": event,
              "trace_id": rid.rjust(32, "0")[-32:], **fields, "request.id": rid}
    return json.dumps(record, separators=(",", ":")).encode()


def _write(path: Path, seed: int, size: int) -> None:
    rng = random.Random(seed)
    pad = "x" * 300  # long lines: the 16 MB worth a pool come in a few tens of thousands
    out: list[bytes] = []
    total = 0
    second = 80_000  # the day changes part way through
    open_requests: dict[str, int] = {}
    ended: list[str] = []
    n = 0
    long_one = f"long-{seed}"
    open_requests[long_one] = 0
    while total < size:
        second += 1
        roll = rng.random()
        if roll < 0.05 and len(open_requests) < 40:
            n += 1
            open_requests[f"r{seed}-{n}"] = 0
        elif roll < 0.055 and ended:  # a late line: teardown soon after the access line
            line = _line(second, "app.teardown", rng.choice(ended[-3:]), pad=pad)
            out.append(line)
            total += len(line) + 1
            continue
        elif roll < 0.09:
            out.append(b"not json " + pad.encode())
            continue
        if not open_requests:
            continue
        rid = rng.choice(sorted(open_requests))
        if rid == long_one:
            rid = rng.choice(sorted(open_requests))
        steps = open_requests[rid]
        finish = steps > rng.randint(0, 12) and rid != long_one
        if finish:
            line = _line(second, "flask.request_finished", rid, **{
                "http.request.method": "GET", "url.path": f"/{rid}", "http.response.status_code": 200,
                "duration_ms": 1.5})
            del open_requests[rid]
            ended.append(rid)
        else:
            line = _line(second, "app.step", rid, step=steps, pad=pad)
            open_requests[rid] = steps + 1
        if rng.random() < 0.01:
            line += b"\r"
        out.append(line)
        total += len(line) + 1
    for _ in range(3000):  # the long request, past its line limit, in the file's last blocks
        second += 1
        out.append(_line(second, "app.step", long_one, pad=pad))
    out.append(_line(second + 1, "flask.request_finished", long_one, **{
        "http.request.method": "GET", "url.path": "/long", "http.response.status_code": 200, "duration_ms": 9.0}))
    path.write_bytes(b"\n".join(out) + b"\n")


def test_by_request_on_every_core_is_the_one_process_output(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _write(first, 1, 18 << 20)
    _write(second, 2, 3 << 20)
    assert first.stat().st_size > 16 << 20
    for files, mode in (([first], ["--by-request", "--color=always"]),
                        ([first], ["--by-request", "--json"]),
                        ([first, second], ["--by-request", "--color=never"]),
                        ([first], ["--by-request", "--max-open", "8"]),
                        ([first], ["--errors", "--by-request"])):
        paths = [str(f) for f in files]
        parallel = tail(*paths, *mode, timeout=120)
        serial = subprocess.run([sys.executable, "-c", SERIAL, "tail", *paths, *mode], capture_output=True,
                                env=env(), cwd=ROOT, timeout=120, check=True)
        assert parallel.returncode == serial.returncode == 0, mode
        assert parallel.stderr == serial.stderr, mode
        assert parallel.stdout == serial.stdout, (files, mode)
        assert parallel.stdout, mode
    shown = tail(str(first), "--by-request", "--color=never").stdout
    assert b"more lines of this request not kept" in shown  # the long one, capped across blocks


def test_a_block_grouped_on_its_own_is_grouped_as_the_grouper_does() -> None:
    """group.group_local (what a worker does with its block) against group.Grouper (the one-process
    way) from a fresh start: the same items, in the same order, the same requests left open, with
    late lines and keys forgotten after a small cap."""
    from array import array

    from flask_sigobs.tail.group import BLOCK, Grouper, group_local, key_of, key_of_record
    from flask_sigobs.tail.records import parse

    class Items:
        def __init__(self) -> None:
            self.items: list[tuple[int, list[bytes]]] = []

        def block(self, lines: list[bytes], note: str, dropped: int) -> None:
            self.items.append((BLOCK, list(lines)))

        def one(self, kind: int, line: bytes) -> None:
            self.items.append((kind, [line]))

    rng = random.Random(8)
    for _ in range(300):
        lines = []
        for second in range(rng.randint(1, 60)):
            rid = f"r{rng.randint(0, 9)}"
            event = rng.choice(["flask.request_finished", "app.step", "app.step"])
            line = _line(second, event, rid)
            if rng.random() < 0.1:
                line = rng.choice([b"not json", b'{"event":"x"}', line.replace(b'"request.id":"', b'"request.id": "'),
                                   line + b"\r"])
            lines.append(line)
        cap = rng.randint(1, 4)
        plain = Items()
        grouper = Grouper(plain, max_open=10**9, max_lines=10**9)
        grouper._ended_cap = cap
        for line in lines:  # as RequestSink groups, in one process
            if line.endswith(b"}\r") and line.startswith(b"{"):
                line = line[:-1]
            elif not (line.endswith(b"}") and line.startswith(b"{")):
                plain.one(2, line)
                continue
            found = key_of(line)
            if found is None:
                record = parse(line)
                if record is None:
                    plain.one(2, line)
                    continue
                found = key_of_record(record)
            grouper.add(line, *found, 0.0)
        local = group_local(lines, cap)
        cleaned = [line[:-1] if line.endswith(b"}\r") else line for line in lines]
        order = array("I", local.order)
        counts = array("I", local.counts)
        items = []
        at = 0
        for kind, count in zip(local.kinds, counts):
            items.append((kind, [cleaned[i] for i in order[at:at + count]]))
            at += count
        assert items == plain.items, lines
        assert [(key, lines_of) for key, lines_of in local.still_open] == [
            (key, request.lines) for key, request in grouper.open.items()], lines


@pytest.mark.parametrize("mode", [["--by-request"], []], ids=["by request", "line by line"])
def test_ctrl_c_on_every_core_ends_quietly(tmp_path: Path, mode: list[str]) -> None:
    import signal
    import time

    from .tail_support import SIGOBS

    log = tmp_path / "a.jsonl"
    _write(log, 3, 17 << 20)
    shown = tmp_path / "shown.txt"
    with shown.open("wb") as out:
        process = subprocess.Popen([*SIGOBS, "tail", *[str(log)] * 6, *mode, "--color=never"],
                                   stdout=out, stderr=subprocess.PIPE, cwd=ROOT, env=env())
        deadline = time.monotonic() + 30
        while shown.stat().st_size == 0 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)  # until the workers' first results are written
        time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
    assert process.returncode == 130, (process.returncode, errors[-2000:])
    assert errors == b"", errors[-2000:]  # no traceback
    if mode:
        assert b"(interrupted before its access line)" in shown.read_bytes()


_INTERRUPTED_EVERYWHERE = r"""
import faulthandler, io, sys
faulthandler.dump_traceback_later(float(sys.argv[2]), exit=True)  # a hang fails, with where it hung
from flask_sigobs.tail import parallel
from tests.tail_support import run_interrupted, tail_sink

path = sys.argv[1]
data = open(path, "rb").read()
pieces, start = [], 0
while start < len(data):
    end = data.index(b"\n", min(start + len(data) // 6, len(data) - 1)) + 1
    pieces.append(parallel.Slice(path, start, end - start))
    start = end

by_request = sys.argv[3] == "--by-request"

def run(at):
    shown = io.BytesIO()
    sink = tail_sink(shown, by_request=by_request, parallel=True)

    def work():
        for piece in pieces:
            sink.feed_slice(piece)
        sink.finish("input ended before its access line")

    try:
        interrupted, steps = run_interrupted(work, {parallel.__file__}, at)
        if interrupted:
            sink.interrupt()  # what the command does on Ctrl-C
    finally:
        sink.close()
    return shown.getvalue(), steps

whole, steps = run(None)
assert b"/long" in whole and steps > 50, steps
for at in [*range(1, 120), *range(120, steps + 1, 5)]:
    shown, _ = run(at)
    assert shown.count(b"/long") <= 1, at
print(steps)
"""


@pytest.mark.parametrize("mode", ["--by-request", "line by line"])
def test_ctrl_c_anywhere_in_the_workers_bookkeeping_ends_without_waiting_for_them(tmp_path: Path, mode: str) -> None:
    """Ctrl-C between a piece counted as sent and its sending (or a result read and its
    handing over) must not leave the command waiting for a result that never comes."""
    log = tmp_path / "a.jsonl"
    _write(log, 4, 1 << 20)
    done = subprocess.run([sys.executable, "-c", _INTERRUPTED_EVERYWHERE, str(log), "60", mode], capture_output=True,
                          env=env(), cwd=ROOT, timeout=90)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert int(done.stdout) > 50


_PARENT_GONE = r"""
import io, os, sys
from flask_sigobs.tail import parallel
from tests.tail_support import tail_sink

path = sys.argv[1]
sink = tail_sink(io.BytesIO(), by_request=sys.argv[2] == "--by-request", parallel=True)
sink.feed_slice(parallel.Slice(path, 0, os.path.getsize(path)))
os._exit(0)  # gone without stopping its workers, as when killed
"""


@pytest.mark.parametrize("mode", ["--by-request", "line by line"])
def test_the_workers_leave_when_the_command_is_gone(tmp_path: Path, mode: str) -> None:
    """However the command ends (killed, or Ctrl-C at a moment nothing could tidy up), its workers
    must not outlive it: they hold its standard output, and a pipe reading it would never end."""
    log = tmp_path / "a.jsonl"
    _write(log, 5, 1 << 20)
    done = subprocess.run([sys.executable, "-c", _PARENT_GONE, str(log), mode], capture_output=True, env=env(),
                          cwd=ROOT, timeout=60)  # returns only when every holder of stdout has exited
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()[-3000:]
