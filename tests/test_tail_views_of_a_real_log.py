"""``sigobs tail`` on a log written by the example app: each view says what happened.

The example app's tour (a page, a failed login, a login, an API call with a custom signal,
access denied, a route that raises, a logout) under a real server, then the real command.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from . import tail_support
from .tail_support import ROOT, SIGOBS, env, tail, text

tour_log = tail_support.tour_log  # the fixture, for the tests that take it

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_plain_view_has_one_readable_line_per_event(tour_log: Path) -> None:
    result = tail(str(tour_log))
    assert result.returncode == 0, result.stderr
    out = text(result)
    assert not ANSI.search(out), "no colour when not on a terminal"
    records = [json.loads(line) for line in tour_log.read_text().splitlines()]
    finished = [r for r in records if r["event"] == "flask.request_finished"]
    # the access line: method, path, status, duration, user, short trace id
    login = next(r for r in finished if r["url.path"] == "/login" and r["http.response.status_code"] == 302)
    line = next(line for line in out.splitlines() if login["trace_id"][:8] in line and "request_finished" in line)
    assert re.search(r"INFO  [0-9a-f]{8} flask\.request_finished +POST /login 302 [\d.]+m?s user=alice$", line), line
    # an auth event: user, client address, outcome
    assert re.search(r"WARN  [0-9a-f]{8} auth\.login_failed +user=alice from=127\.0\.0\.1 reason=\"bad password\"", out)
    assert "permission=admin" in out
    # the custom signal renders its own fields
    assert re.search(r"shop\.item_viewed +item_id=2 name=lantern", out)
    # the exception: type and message, then the app's frame, library frames folded
    assert "RuntimeError: report generator crashed for 2026" in out
    assert re.search(r"^\s+at examples/app\.py:\d+ in report$", out, re.M)
    assert re.search(r"^\s+\+ \d+ library frames: flask", out, re.M)
    assert "site-packages/flask/app.py" not in out, "library frames are folded without -v"
    # the app's own stdlib log line (structlog dict traceback under "exception") renders too
    assert "examples.app: Exception on /api/reports/2026 [GET]" in out
    # every JSON line became at least one output line
    assert len([line for line in out.splitlines() if re.match(r"\d\d:\d\d:\d\d\.\d{3} ", line)]) == len(records)


def test_verbose_shows_every_key_and_every_frame(tour_log: Path) -> None:
    out = text(tail(str(tour_log), "-v"))
    assert "user_agent.original=sigobs-tour/1.0" in out
    assert "http.response.body.size=" in out
    assert "flask/app.py:" in out, "-v unfolds library frames"


def test_fields_chooses_what_follows_the_event(tour_log: Path) -> None:
    out = text(tail(str(tour_log), "--fields", "http.response.status_code,client.address", "--event",
                    "flask.request_finished"))
    lines = out.splitlines()[1:]
    assert lines and all(re.search(r"request_finished +http\.response\.status_code=\d{3} client\.address=127\.0\.0\.1$", line)
                         for line in lines), lines


def test_by_request_groups_each_request_under_its_access_line(tour_log: Path) -> None:
    out = text(tail(str(tour_log), "--by-request"))
    blocks = [b for b in re.split(r"^(?=── \d\d:)", out, flags=re.M) if re.match(r"── \d\d:", b)]
    records = [json.loads(line) for line in tour_log.read_text().splitlines()]
    assert len(blocks) == len({r["request.id"] for r in records})
    failed_login = next(b for b in blocks if "POST /login 401" in b.splitlines()[0])
    header, *body = failed_login.rstrip("\n").splitlines()
    assert re.match(r"── \d\d:\d\d:\d\d\.\d{3} INFO  POST /login 401 [\d.]+m?s user=alice [0-9a-f]{8}$", header), header
    assert body and all(line.startswith("   ") for line in body)
    assert any("auth.login_failed" in line for line in body)
    assert any("flask.message_flashed" in line for line in body)
    crashed = next(b for b in blocks if "GET /api/reports/2026 500" in b)
    assert "RuntimeError: report generator crashed for 2026" in crashed


def test_jaeger_link_on_each_request(tour_log: Path) -> None:
    out = text(tail(str(tour_log), "--by-request", "--jaeger", "http://localhost:16686/"))
    headers = [line for line in out.splitlines() if line.startswith("── ") and "/trace/" in line]
    records = [json.loads(line) for line in tour_log.read_text().splitlines()]
    traces = {r["trace_id"] for r in records if r["event"] == "flask.request_finished"}
    assert {re.search(r"http://localhost:16686/trace/([0-9a-f]{32})$", h).group(1) for h in headers} == traces
    # the environment variable works as well, on the plain view's access lines
    plain = text(tail(str(tour_log), SIGOBS_JAEGER_URL="http://jaeger:16686"))
    assert len(re.findall(r"request_finished .* http://jaeger:16686/trace/[0-9a-f]{32}$", plain, re.M)) == len(traces)


def test_errors_shows_whole_failing_requests_only(tour_log: Path) -> None:
    out = text(tail(str(tour_log), "--errors", "--by-request"))
    headers = [line for line in out.splitlines() if re.match(r"── \d\d:", line)]
    # the failed login (a warning), access denied (a warning) and the 500: nothing else
    assert len(headers) == 3, headers
    assert any("POST /login 401" in h for h in headers)
    assert any("GET /admin 403" in h for h in headers)
    assert any("GET /api/reports/2026 500" in h for h in headers)
    # whole: the failed login's info and debug lines are there too, not only the warning
    assert "flask.message_flashed" in out and "flask.request_started" in out
    # --json: the same requests' original lines, unchanged
    raw = tail(str(tour_log), "--errors", "--json").stdout.splitlines()
    originals = set(tour_log.read_bytes().splitlines())
    assert raw and all(line in originals for line in raw)
    ids = {json.loads(line)["request.id"] for line in raw}
    assert len(ids) == 3


def test_json_passes_the_original_lines_through_filters(tour_log: Path) -> None:
    result = tail(str(tour_log), "--json", "--event", "auth.*", "--user", "alice")
    lines = result.stdout.splitlines()
    originals = tour_log.read_bytes().splitlines()
    expected = [line for line in originals
                if json.loads(line)["event"].startswith("auth.") and json.loads(line).get("enduser.id") == "alice"]
    assert lines == expected and lines


def test_filters_combine(tour_log: Path) -> None:
    records = [json.loads(line) for line in tour_log.read_text().splitlines()]

    def ids(*args: str) -> list[str]:
        return [json.loads(line)["span_id"] for line in tail(str(tour_log), "--json", *args).stdout.splitlines()]

    def expect(predicate) -> list[str]:  # type: ignore[no-untyped-def]
        return [r["span_id"] for r in records if predicate(r)]

    assert ids("--level", "warning") == expect(lambda r: r["level"] in ("warning", "error", "critical"))
    assert ids("--status", ">=400") == expect(lambda r: r.get("http.response.status_code", 0) >= 400)
    assert ids("--status", "5xx") == expect(lambda r: r.get("http.response.status_code", 0) >= 500)
    assert ids("--route", "/api/*") == expect(lambda r: r.get("http.route", r.get("url.path", "")).startswith("/api/"))
    crash = next(r for r in records if r["event"] == "flask.got_request_exception")
    assert ids("--trace", crash["trace_id"][:8]) == expect(lambda r: r.get("trace_id") == crash["trace_id"])
    assert ids("--request-id", crash["request.id"][:6]) == expect(lambda r: r.get("request.id") == crash["request.id"])
    assert ids("--where", "http.route~^/api/", "--where", "http.response.status_code>=500") == \
        expect(lambda r: r.get("http.route", "").startswith("/api/") and r.get("http.response.status_code", 0) >= 500)
    assert ids("--where", "permission=admin") == expect(lambda r: r.get("permission") == "admin")
    assert ids("--event", "flask.*", "--event", "!flask.request_*") == \
        expect(lambda r: r["event"].startswith("flask.") and not r["event"].startswith("flask.request_"))
    slowest = max(r["duration_ms"] for r in records if "duration_ms" in r)
    assert ids("--slower", f"{slowest - 0.0005}ms") == expect(lambda r: r.get("duration_ms", 0) > slowest - 0.0005)
    middle = records[len(records) // 2]["timestamp"]
    assert ids("--since", middle, "--utc") == expect(lambda r: r["timestamp"] >= middle)
    assert ids("--until", middle, "--utc") == expect(lambda r: r["timestamp"] <= middle)
    assert ids("--since", "10m") == expect(lambda r: True)  # the tour just ran
    assert ids("--until", "1d") == []


def test_stats_answer_who_logged_in_from_where_and_what_failed(tour_log: Path) -> None:
    out = text(tail(str(tour_log), "--stats"))
    assert re.search(r"^GET /api/reports/<int:year> +1 +100\.0% +0\.0% ", out, re.M), out
    assert re.search(r"^POST /login +2 +0\.0% +50\.0% +[\d.]+m?s", out, re.M), out
    # one login (two auth events: ours and Flask-Login's, counted once), one failure, one denial
    assert re.search(r"^alice +1 +1 +1 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +127\.0\.0\.1$", out, re.M), out
    assert re.search(r"^127\.0\.0\.1 +1 +alice$", out, re.M), out
    # the exception logged twice (our event and Flask's own log line) counts once
    assert re.search(r"^RuntimeError +1 +report generator crashed for 2026", out, re.M), out


def test_standard_input_and_the_three_ways_to_run_it(tour_log: Path) -> None:
    data = tour_log.read_bytes()
    by_file = text(tail(str(tour_log)))
    assert text(tail(stdin=data)) == by_file
    assert text(tail("-", stdin=data)) == by_file
    module = subprocess.run([sys.executable, "-m", "flask_sigobs", "tail", str(tour_log)], capture_output=True,
                            env=env(), cwd=ROOT, check=True, timeout=30)
    assert module.stdout.decode() == by_file
    flask = subprocess.run([sys.executable, "-m", "flask", "sigobs", "tail", str(tour_log), "--level", "warning"],
                           capture_output=True, env=env(), cwd=ROOT, timeout=60, check=False)
    assert flask.returncode == 0, flask.stderr.decode()
    assert flask.stdout.decode() == text(tail(str(tour_log), "--level", "warning"))
    assert SIGOBS  # the console script (or module) used by every other test


def test_last_n_lines(tour_log: Path) -> None:
    originals = tour_log.read_bytes().splitlines()
    assert tail(str(tour_log), "--json", "-n", "5").stdout.splitlines() == originals[-5:]
    assert tail("--json", "-n", "3", stdin=tour_log.read_bytes()).stdout.splitlines() == originals[-3:]
    assert tail(str(tour_log), "--json", "-n", "0").stdout == b""


def test_bad_options_get_a_usage_error_not_a_traceback(tour_log: Path) -> None:
    for args in (["--status", "6xx"], ["--slower", "fast"], ["--since", "yesterday-ish"], ["--level", "loud"],
                 ["--where", "=x"], ["--stats", "--json"], ["--jaeger", "localhost:16686"]):
        result = tail(str(tour_log), *args)
        assert result.returncode == 2, args
        assert b"Traceback" not in result.stderr and b"usage:" in result.stderr, (args, result.stderr)
    missing = tail(str(tour_log.parent / "nope.jsonl"), str(tour_log))
    assert missing.returncode == 1 and b"nope.jsonl" in missing.stderr
    assert b"flask.request_finished" in missing.stdout, "the other file is still read"
