"""What real log streams hold, generated: lines that are not JSON, truncated JSON, a 1 MB line,
invalid UTF-8, C1 and bidi controls, interleaved workers, and a big file read on every core.
And the parts that make the speed, checked against the plain way: the byte-level prefilter
never drops a line the filters would keep."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from flask_sigobs.tail import filters as f
from flask_sigobs.tail.records import parse
from flask_sigobs.tail.specs import status, time_bound, where
from flask_sigobs.tail.stats import Histogram
from .tail_support import ROOT, env, event_line, tail, text


def test_lines_that_are_not_json_pass_through_marked(tmp_path: Path) -> None:
    log = tmp_path / "mixed.log"
    log.write_bytes(b"\n".join([
        b"[2026-11-25 20:07:28 +0000] [42] [INFO] Starting gunicorn 23.0.0",
        event_line("flask.request_finished", request="r1", trace="a" * 32,
                   **{"http.request.method": "GET", "url.path": "/", "http.response.status_code": 200,
                      "duration_ms": 1.2}).encode(),
        b"Traceback (most recent call last):",
        b'  File "/srv/app.py", line 3, in <module>',
        b'{"timestamp": "2026-11-25T20:07:29Z", "level": "info", "event": "cut off in the midd',
        b"[1, 2, 3]",
        b"",
        b"   ",
        event_line("auth.login_failed", level="warning", **{"enduser.id": "bob"}).encode(),
    ]) + b"\n")
    out = text(tail(str(log)))
    assert "» [2026-11-25 20:07:28 +0000] [42] [INFO] Starting gunicorn 23.0.0" in out
    assert "» Traceback (most recent call last):" in out
    assert '»   File "/srv/app.py", line 3, in <module>' in out
    assert '» [not valid JSON] {"timestamp": "2026-11-25T20:07:29Z"' in out
    assert "» [1, 2, 3]" in out
    assert "GET / 200" in out and "user=bob" in out
    # kept with filters too (they cannot be judged), hidden only when asked
    assert "» Traceback" in text(tail(str(log), "--level", "error"))
    assert "»" not in text(tail(str(log), "--hide-raw"))
    # --json: standard output stays JSON (for jq); the raw lines go to standard error, marked
    result = tail(str(log), "--json")
    assert [json.loads(line)["event"] for line in result.stdout.splitlines()] == \
        ["flask.request_finished", "auth.login_failed"]
    assert b"Starting gunicorn" in result.stderr and b"[not valid JSON]" in result.stderr


def test_a_one_megabyte_line_invalid_utf8_and_control_characters(tmp_path: Path) -> None:
    log = tmp_path / "odd.jsonl"
    huge = "x" * 1_000_000
    log.write_bytes(b"\n".join([
        event_line("app.big", payload=huge).encode(),
        event_line("app.latin1", note="caf\u00e9").encode().replace("caf\\u00e9".encode(), b"caf\xe9"),
        event_line("app.controls", note="a\x1b[2Jb\x9bc\u202ed\u2028e\x00f").encode(),
        b"plain text with \xff\xfe bad bytes and \x1b[31m colour",
    ]) + b"\n")
    result = tail(str(log))
    assert result.returncode == 0 and result.stderr == b""
    out = text(result)
    big = next(line for line in out.splitlines() if "app.big" in line)
    assert len(big) < 3000 and "…(+998000 chars, -v shows all)" in big
    assert len(text(tail(str(log), "-v", "--event", "app.big"))) > 1_000_000
    assert "app.latin1" in out and 'note="caf\ufffd"' in out, "one bad byte does not hide the event"
    assert 'note="a\\x1b[2Jb\\x9bc\\u202ed\\u2028e\\x00f"' in out
    assert "» plain text with \ufffd\ufffd bad bytes and \\x1b[31m colour" in out
    assert "\x1b" not in out


def test_lines_longer_than_a_read_do_not_end_the_file(tmp_path: Path) -> None:
    # Lines of 1.5 MB and 3 MB span whole reads with no newline in them: what follows each is
    # still read, in the plain view, with --json, and with -n.
    log = tmp_path / "long.jsonl"
    lines = [event_line("app.before")]
    for size in (1_500_000, 3_000_000):
        lines.append(event_line("app.long", payload="y" * size))
        lines.append(event_line(f"app.after_{size}"))
    log.write_text("\n".join(lines) + "\n")
    for args in ((str(log),), (str(log), "--json"), (str(log), "-n", "3")):
        result = tail(*args)
        assert result.returncode == 0, result.stderr
        out = text(result)
        assert "app.after_1500000" in out or args[-1] == "3", args
        assert "app.after_3000000" in out, args
    assert text(tail(str(log), "--json")).count("\n") == 5


def test_interleaved_workers_make_whole_blocks(tmp_path: Path) -> None:
    rng = random.Random(5)
    open_requests: dict[str, list[str]] = {}
    lines: list[str] = []
    second = 0
    for n in range(300):
        rid = f"req{n:04d}"
        open_requests[rid] = [event_line("flask.request_started", request=rid, trace=f"{n:032x}",
                                         **{"http.request.method": "GET", "url.path": f"/r/{n}"}),
                              event_line("app.step", request=rid, trace=f"{n:032x}", step=1),
                              event_line("flask.request_finished", request=rid, trace=f"{n:032x}",
                                         **{"http.request.method": "GET", "url.path": f"/r/{n}",
                                            "http.response.status_code": 200, "duration_ms": 2.0})]
        while len(open_requests) > 6 or (n == 299 and open_requests):
            rid = rng.choice(sorted(open_requests))
            second += 1
            record = json.loads(open_requests[rid].pop(0))
            record["timestamp"] = f"2026-11-25T20:{second // 600:02d}:{second // 10 % 60:02d}.{second % 10}00000Z"
            lines.append(json.dumps(record))
            if not open_requests[rid]:
                del open_requests[rid]
    log = tmp_path / "workers.jsonl"
    log.write_text("\n".join(lines) + "\n")
    out = text(tail(str(log), "--by-request"))
    blocks = re.findall(r"^── \S+ INFO  GET (/r/\d+) 200.*\n((?:   .*\n)*)", out, re.M)
    assert len(blocks) == 300
    for path, body in blocks:
        assert body.count("\n") == 2 and f"GET {path}" in body and "app.step" in body, (path, body)
    # --json keeps each request's lines together too
    raw = [json.loads(line)["request.id"] for line in tail(str(log), "--by-request", "--json").stdout.splitlines()]
    assert raw == [rid for i, rid in enumerate(raw) if i % 3 == 0 for _ in range(3)]


def test_a_big_file_renders_the_same_on_every_core(tmp_path: Path) -> None:
    log = tmp_path / "big.jsonl"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tail_speed.py"), "--generate-only", str(log),
                    "--lines", "45000"], check=True, timeout=120, env=env())
    assert log.stat().st_size > 16 << 20  # big enough for the worker processes
    serial_probe = ("import sys; import flask_sigobs.tail.parallel as p; p.worth_it = lambda n: False; "
                    "import flask_sigobs.tail.command as c; c.worth_it = p.worth_it; "
                    "from flask_sigobs.cli import main; sys.exit(main())")
    for mode in (["--color=always"], ["--by-request", "--color=always"], ["--errors", "--json"]):
        parallel = tail(str(log), *mode)
        serial = subprocess.run([sys.executable, "-c", serial_probe, "tail", str(log), *mode], capture_output=True,
                                env=env(), cwd=ROOT, timeout=120, check=True)
        assert parallel.returncode == 0 and parallel.stderr == b"", mode
        assert parallel.stdout == serial.stdout, mode
        if "--json" not in mode:
            assert parallel.stdout.count(b"\xe2\x94\x80\xe2\x94\x80 2026") == 1, "one date line, not one per block"


def test_a_line_that_fools_the_byte_level_grouping_is_still_shown(tmp_path: Path) -> None:
    log = tmp_path / "nested.jsonl"
    decoy = json.loads(event_line("app.forwarded", request="real-one", trace="c" * 32))
    decoy["upstream"] = {"request.id": "decoy"}  # nested after the real one: rfind sees the decoy
    log.write_text("\n".join([
        event_line("flask.request_started", request="decoy", trace="d" * 32,
                   **{"http.request.method": "GET", "url.path": "/decoy"}),
        json.dumps(decoy, separators=(",", ":")),
        event_line("flask.request_finished", request="decoy", trace="d" * 32,
                   **{"http.request.method": "GET", "url.path": "/decoy", "http.response.status_code": 200,
                      "duration_ms": 1.0}),
    ]) + "\n")
    out = text(tail(str(log), "--by-request"))
    assert "app.forwarded" in out and "GET /decoy 200" in out
    block = out[out.index("── 20:07:28.597 INFO  GET /decoy"):]
    assert "app.forwarded" not in block, "not inside a request it does not belong to"


# -- the parts that make it fast, against the plain way ----------------------------------------

_values = st.sampled_from(["alice", "bob", "auth.login_failed", "auth.logged_out", "flask.request_finished",
                           "warning", "error", "info", "debug", "WARNING", "x", "caf\u00e9", 'q"uote', "a/b"])


@st.composite
def _lines(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([b"not json at all", b'{"cut": "off', b"[1,2]", b"{}", b"{ }"]))
    record = {"level": draw(_values), "event": draw(_values)}
    if draw(st.booleans()):
        record["enduser.id"] = draw(_values)
    if draw(st.booleans()):
        record["nested"] = {"level": draw(_values), "event": draw(_values)}
    if draw(st.booleans()):
        record["note"] = draw(_values)
    encoded = json.dumps(record, ensure_ascii=draw(st.booleans()), separators=draw(
        st.sampled_from([(",", ":"), (", ", ": ")])))
    return encoded.encode()


@settings(max_examples=300, deadline=None)
@given(st.lists(_lines(), min_size=1, max_size=30), st.sampled_from(
    [{"level_min": 30}, {"events": ["auth.*"]}, {"events": ["auth.login_failed", "flask.*"]},
     {"users": ["alice"]}, {"users": ["caf\u00e9"]}, {"events": ["auth.*"], "users": ["bob"], "level_min": 20},
     {"wheres": [where("note=x")]}, {"wheres": [where("note=a/b")]}]))
def test_the_prefilter_never_drops_a_line_the_filters_keep(lines: list[bytes], chosen: dict) -> None:
    filterset = f.build(**chosen)
    match = filterset.matcher()
    block = b"\n".join(lines) + b"\n"
    prefilter = filterset.prefilter()
    kept = prefilter(block) if prefilter is not None else lines
    wanted = [line for line in lines if (record := parse(line)) is None or match(record)]  # type: ignore[misc]
    assert set(wanted) <= set(kept), "a needle is only ever a necessary condition"
    assert all(line in kept for line in lines if parse(line) is None and line.strip()), "raw lines are kept"


def test_block_shape_check() -> None:
    assert f._all_objects(b'{"a":1}\n{"b":2}\n')
    assert not f._all_objects(b'{"a":1}\nplain\n{"b":2}\n')
    assert not f._all_objects(b'{"a":1}\n{"b":2\n')
    assert not f._all_objects(b'{"a":1}\n\n{"b":2}\n')
    assert not f._all_objects(b' {"a":1}\n')


def test_specs() -> None:
    assert status("5xx") == frozenset(range(500, 600))
    assert status(">=400") == frozenset(range(400, 1000))
    assert status("4xx,!404") == frozenset(range(400, 500)) - {404}
    assert status("500-502") == {500, 501, 502}
    bound = time_bound("2026-11-25T20:00:00Z")
    assert bound.canonical == "2026-11-25T20:00:00.000000Z"
    assert time_bound("20:00", utc=True).canonical.endswith("T20:00:00.000000Z")
    assert where("duration_ms>250").test(300.5) and not where("duration_ms>250").test("slow")
    assert where("enduser.id!=alice").test(f.MISSING)


def test_percentiles_stay_within_a_percent() -> None:
    rng = random.Random(1)
    values = [rng.lognormvariate(1, 1.2) for _ in range(20_000)]
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    values.sort()
    for q in (50, 95, 99):
        exact = values[int(len(values) * q / 100) - 1]
        assert abs(histogram.percentile(q) - exact) / exact < 0.01
    assert len(histogram.counts) < 1500, "bounded whatever the count"


def test_tailing_does_not_import_flask_opentelemetry_or_structlog(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text(event_line("flask.request_finished") + "\n")
    probe = ("import sys; from flask_sigobs.cli import main; code = main(['tail', sys.argv[1], '--by-request']); "
             "heavy = [m for m in ('flask', 'opentelemetry', 'structlog', 'werkzeug', 'click') if m in sys.modules]; "
             "print(heavy, file=sys.stderr); sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", probe, str(log)], capture_output=True, env=env(), timeout=30)
    assert result.returncode == 0 and result.stderr.strip() == b"[]", result.stderr
