"""``sigobs tail -f`` keeps up with a real app's log through rotation, truncation and a file
that does not exist yet; a closed pipe and Ctrl-C end it quietly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from .tail_support import SIGOBS, ROOT, Follower, env, event_line, write_tour_log


def _access_line(line: str) -> bool:
    return '"event":"flask.request_finished"' in line


def test_follow_survives_rotation_and_truncation_of_a_real_apps_log(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    first = write_tour_log(log, level="info")
    follower = Follower(str(log), "-f", "--json", "--poll", "0.05", "-n", "2")
    try:
        # starts from the last 2 lines
        follower.wait_for(lambda line: json.loads(line)["timestamp"] == first[-1]["timestamp"])
        assert [json.loads(line)["timestamp"] for line in follower.seen] == [r["timestamp"] for r in first[-2:]]

        # appended while following
        second = write_tour_log(log, level="info")
        follower.wait_for(lambda line: json.loads(line)["timestamp"] == second[-1]["timestamp"])

        # rotation: renamed away (a last line still lands in the old file), then a new file
        log.rename(tmp_path / "app.jsonl.1")
        with open(tmp_path / "app.jsonl.1", "a") as old:
            old.write(event_line("late.in.old.file", trace="ab" * 16, request="r-old") + "\n")
        third = write_tour_log(log, level="info")
        follower.wait_for(lambda line: json.loads(line)["timestamp"] == third[-1]["timestamp"])
        events = [json.loads(line)["event"] for line in follower.seen]
        assert "late.in.old.file" in events, "the rotated file's last lines are read before moving on"
        assert events.index("late.in.old.file") < len(events) - len(third)

        # truncation (copytruncate rotation): read again from the top
        with open(log, "w"):
            pass
        time.sleep(0.2)
        fourth = write_tour_log(log, level="info")
        follower.wait_for(lambda line: json.loads(line)["timestamp"] == fourth[-1]["timestamp"])

        seen = [json.loads(line)["timestamp"] for line in follower.seen]
        for name, batch in (("appended", second), ("after rotation", third), ("after truncation", fourth)):
            stamps = [r["timestamp"] for r in batch]
            assert [s for s in seen if s in set(stamps)] == stamps, f"every line {name}, once, in order"
        notices = " ".join(follower.stderr())
        assert "rotated" in notices and "truncated" in notices
    finally:
        follower.stop()


def test_follow_waits_for_a_file_that_does_not_exist_yet(tmp_path: Path) -> None:
    log = tmp_path / "later" / "app.jsonl"
    log.parent.mkdir()
    follower = Follower(str(log), "-f", "--poll", "0.05")
    try:
        time.sleep(0.3)
        assert follower.process.poll() is None, "still waiting"
        records = write_tour_log(log)
        follower.wait_for(lambda line: records[-1]["trace_id"][:8] in line and "request_finished" in line)
        assert any("waiting" in line for line in follower.stderr())
    finally:
        follower.stop()


def test_follow_by_request_releases_requests_as_they_end_and_flags_a_hung_one(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text("")
    follower = Follower(str(log), "-f", "--by-request", "--poll", "0.05", "--request-timeout", "0.5")
    try:
        with open(log, "a") as out:
            out.write(event_line("flask.request_started", request="hung", trace="1" * 32,
                                 **{"http.request.method": "GET", "url.path": "/slow"}) + "\n")
            out.write(event_line("shop.item_viewed", request="quick", trace="2" * 32, item_id=1) + "\n")
            out.write(event_line("flask.request_finished", request="quick", trace="2" * 32,
                                 **{"http.request.method": "GET", "url.path": "/quick",
                                    "http.response.status_code": 200, "duration_ms": 1.5}) + "\n")
        follower.wait_for(lambda line: "GET /quick 200" in line)
        follower.wait_for(lambda line: "shop.item_viewed" in line)
        flagged = follower.wait_for(lambda line: "GET /slow" in line, timeout=5)
        assert "no access line after 0.5s" in flagged
    finally:
        follower.stop()


def _big_log(path: Path, lines: int = 20_000) -> None:
    with open(path, "w") as out:
        for n in range(lines):
            out.write(event_line("flask.request_finished", request=f"r{n}", trace=f"{n:032x}",
                                 **{"http.request.method": "GET", "url.path": f"/items/{n}",
                                    "http.response.status_code": 200, "duration_ms": 1.0}) + "\n")


def test_a_closed_pipe_ends_it_quietly(tmp_path: Path) -> None:
    log = tmp_path / "big.jsonl"
    _big_log(log)
    for args in ([], ["--json"], ["--by-request"]):
        shell = f"{' '.join(SIGOBS)} tail {log} {' '.join(args)} | head -n 1"
        result = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, env=env(),
                                cwd=ROOT, timeout=30, check=False)
        assert result.stdout.count(b"\n") == 1, args
        assert result.stderr == b"", (args, result.stderr)
        assert result.returncode == 0, args


def test_a_closed_pipe_ends_follow_mode_too(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text(event_line("first") + "\n")
    process = subprocess.Popen([*SIGOBS, "tail", "-f", "--poll", "0.05", str(log)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env(), cwd=ROOT)
    try:
        process.stdout.readline()  # the date line
        assert b"first" in process.stdout.readline()
        process.stdout.close()  # the reader goes away
        with open(log, "a") as out:
            for n in range(50):
                out.write(event_line(f"after.{n}") + "\n")
        assert process.wait(timeout=10) == 0
        assert process.stderr.read() == b""
    finally:
        if process.poll() is None:
            process.kill()


def test_ctrl_c_ends_without_a_traceback_and_shows_the_open_requests(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text(event_line("flask.request_started", request="open-one", trace="3" * 32,
                              **{"http.request.method": "POST", "url.path": "/checkout"}) + "\n")
    follower = Follower(str(log), "-f", "--by-request", "--poll", "0.05", "-n", "10")
    try:
        time.sleep(0.5)
        follower.process.send_signal(signal.SIGINT)
        assert follower.process.wait(timeout=10) == 130
        line = follower.wait_for(lambda line: "POST /checkout" in line)
        assert "interrupted" in line
        time.sleep(0.1)
        assert not any("Traceback" in line or "KeyboardInterrupt" in line for line in follower.stderr())
    finally:
        follower.stop()


def test_ctrl_c_while_reading_standard_input(tmp_path: Path) -> None:
    read, write = os.pipe()
    process = subprocess.Popen([*SIGOBS, "tail"], stdin=read, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env(), cwd=ROOT)
    os.close(read)
    try:
        os.write(write, (event_line("before.interrupt") + "\n").encode())
        process.stdout.readline()  # the date line
        assert b"before.interrupt" in process.stdout.readline()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 130
        assert b"Traceback" not in process.stderr.read()
    finally:
        os.close(write)
        if process.poll() is None:
            process.kill()


def test_live_stats_refresh_while_following(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text("")
    follower = Follower(str(log), "-f", "--stats", "--poll", "0.05", "--interval", "0.2")
    try:
        with open(log, "a") as out:
            for n in range(3):
                out.write(event_line("flask.request_finished", request=f"s{n}", trace=f"{n:032x}",
                                     **{"http.request.method": "GET", "http.route": "/quick", "url.path": "/quick",
                                        "http.response.status_code": 200, "duration_ms": 2.0 + n}) + "\n")
        follower.wait_for(lambda line: line.startswith("GET /quick") and " 3 " in line)
        with open(log, "a") as out:
            out.write(event_line("auth.login_failed", level="warning", request="s9", trace="9" * 32,
                                 **{"enduser.id": "mallory", "client.address": "10.0.0.9"}) + "\n")
        follower.wait_for(lambda line: line.startswith("mallory"))
        follower.wait_for(lambda line: line.startswith("10.0.0.9"))
    finally:
        follower.stop()


def test_ctrl_c_at_any_line_of_grouping_leaves_what_was_grouped_showable() -> None:
    """Ctrl-C can strike between any two lines of grouping (between a released request's line
    and its count, say); what the interrupted run then shows must render, each request once."""
    import io

    from flask_sigobs.tail import group, requestsink, sinks

    from .tail_support import run_interrupted, tail_sink

    def line(event: str, request: str, **fields: object) -> str:
        return json.dumps({"timestamp": "2026-11-25T20:07:28.597122Z", "level": "info", "event": event,
                           **fields, "request.id": request}, separators=(",", ":"))

    block = "\n".join([
        line("flask.request_started", "r-a"),
        line("flask.request_finished", "r-b", **{"url.path": "/only-access-line"}),  # the inlined case
        "not json",
        line("app.step", "r-a", step="middle"),
        line("flask.request_finished", "r-a", **{"url.path": "/two-lines"}),
        line("app.late", "r-b"),  # after its request ended
        line("flask.request_started", "r-c", **{"url.path": "/never-ends"}),
    ]).encode() + b"\n"

    def run(at: int | None) -> tuple[str, int]:
        shown = io.BytesIO()
        sink = tail_sink(shown)
        _, steps = run_interrupted(lambda: sink.feed(block, time.monotonic()), {sinks.__file__, requestsink.__file__, group.__file__}, at)
        sink.interrupt()  # as the command does after Ctrl-C
        return shown.getvalue().decode(), steps

    whole, steps = run(None)
    shown_once = ("/only-access-line", "/two-lines", "step=middle", "app.late", "not json", "(interrupted")
    for needle in shown_once:
        assert whole.count(needle) == 1, (needle, whole)
    assert steps > 20
    for at in range(1, steps + 1):
        text, _ = run(at)
        for needle in shown_once:
            assert text.count(needle) <= 1, (at, needle, text)
