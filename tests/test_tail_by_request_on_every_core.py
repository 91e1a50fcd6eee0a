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

from .tail_support import ROOT, env, tail

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
