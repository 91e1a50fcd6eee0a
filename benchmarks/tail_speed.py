"""How fast ``sigobs tail`` reads: lines per second per mode, and start-up time.

    python benchmarks/tail_speed.py                 # 200,000 lines (about 85 MB)
    python benchmarks/tail_speed.py --lines 50000   # quicker

Generates a realistic log file (the access lines, auth events, custom signals, app log lines
and exceptions of many interleaved workers, as flask-sigobs writes them), then runs the real
``sigobs tail`` command on it in each mode, output to /dev/null, best of a few runs, and prints
lines per second. Beside it, when installed: ``jq -c .``, ``pino-pretty``, ``hl`` and ``lnav``
on the same file. It prints numbers; it does not pass or fail.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

import orjson

ROUTES = [
    ("GET", "/", "/", 200, 0.55),
    ("GET", "/api/items/<int:item_id>", "/api/items/{n}", 200, 0.20),
    ("GET", "/api/items/<int:item_id>", "/api/items/{n}", 404, 0.02),
    ("POST", "/api/orders", "/api/orders", 201, 0.06),
    ("GET", "/api/reports/<int:year>", "/api/reports/{y}", 500, 0.01),
    ("POST", "/login", "/login", 302, 0.05),
    ("POST", "/login", "/login", 401, 0.02),
    ("GET", "/admin", "/admin", 403, 0.01),
    ("POST", "/logout", "/logout", 302, 0.03),
    ("GET", "/static/<path:filename>", "/static/app.css", 200, 0.05),
]
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
          "curl/8.5.0", "python-requests/2.32.3"]
STACK = ("Traceback (most recent call last):\n"
         '  File "/srv/app/.venv/lib/python3.11/site-packages/flask/app.py", line 1511, in wsgi_app\n'
         "    response = self.full_dispatch_request()\n"
         '  File "/srv/app/.venv/lib/python3.11/site-packages/flask/app.py", line 919, in full_dispatch_request\n'
         "    rv = self.handle_user_exception(e)\n"
         '  File "/srv/app/.venv/lib/python3.11/site-packages/flask/app.py", line 917, in full_dispatch_request\n'
         "    rv = self.dispatch_request()\n"
         '  File "/srv/app/.venv/lib/python3.11/site-packages/flask/app.py", line 902, in dispatch_request\n'
         "    return self.ensure_sync(self.view_functions[rule.endpoint])(**view_args)\n"
         '  File "/srv/app/shop/reports.py", line 41, in report\n'
         "    raise RuntimeError(f\"report generator crashed for {year}\")\n"
         "RuntimeError: report generator crashed for {y}\n")


def _request_lines(rng: random.Random, moment: datetime) -> list[dict]:
    method, route, path, status, _ = rng.choices(ROUTES, weights=[r[4] for r in ROUTES])[0]
    path = path.format(n=rng.randint(1, 500), y=rng.choice([2024, 2025, 2026]))
    trace, span, rid = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}", f"{rng.getrandbits(128):032x}"
    user = rng.choice(USERS) if rng.random() < 0.6 else None
    client = f"10.0.{rng.randint(0, 20)}.{rng.randint(1, 254)}"
    agent = rng.choice(AGENTS)
    base = {"service.name": "shop", "trace_id": trace, "span_id": span}
    lines: list[dict] = []
    step = timedelta(microseconds=rng.randint(50, 400))

    def event(level: str, event_name: str, **fields: object) -> None:
        nonlocal moment
        moment += step
        lines.append({"timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "level": level, "event": event_name,
                      **base, **fields, "request.id": rid})

    if route == "/login":
        who = rng.choice(USERS)
        if status == 401:
            event("warning", "auth.login_failed", **{"enduser.id": who, "client.address": client,
                                                     "user_agent.original": agent, "reason": "bad password"})
        else:
            event("info", "auth.user_logged_in", **{"enduser.id": who, "client.address": client,
                                                    "user_agent.original": agent})
            event("info", "auth.login_succeeded", **{"enduser.id": who, "client.address": client,
                                                     "user_agent.original": agent, "method": "password"})
            user = who
    elif route == "/admin":
        event("warning", "auth.access_denied", **{"enduser.id": user or "bob", "client.address": client,
                                                  "user_agent.original": agent, "permission": "admin"})
    elif route == "/api/items/<int:item_id>" and status == 200:
        event("info", "shop.item_viewed", item_id=int(path.rsplit("/", 1)[1]), name="lantern")
    elif route == "/api/orders":
        lines.append({"timestamp": (moment + step).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "level": "info",
                      "event": "order placed", "logger": "shop.orders", "service.name": "shop",
                      "request.id": rid, "trace_id": trace, "span_id": span, "order_id": rng.randint(1, 10**6),
                      "total": round(rng.uniform(5, 500), 2)})
    elif status == 500:
        year = path.rsplit("/", 1)[1]
        event("error", "flask.got_request_exception", **{
            "http.request.method": method, "http.route": route, "url.path": path,
            "exception.type": "RuntimeError", "exception.message": f"report generator crashed for {year}",
            "exception.stacktrace": STACK.replace("{y}", year),
            "exception.frames": [{"file": "/srv/app/.venv/lib/python3.11/site-packages/flask/app.py",
                                  "line": n, "function": f} for n, f in
                                 [(1511, "wsgi_app"), (919, "full_dispatch_request"),
                                  (917, "full_dispatch_request"), (902, "dispatch_request")]]
            + [{"file": "/srv/app/shop/reports.py", "line": 41, "function": "report"}]})
    duration = round(rng.lognormvariate(1.2, 0.9), 3)
    finished = {"http.request.method": method, "url.path": path, "http.route": route, "client.address": client,
                "user_agent.original": agent, "http.response.status_code": status, "duration_ms": duration,
                "http.response.body.size": rng.randint(100, 20000)}
    if user:
        finished["enduser.id"] = user
    event("error" if status >= 500 else "info", "flask.request_finished", **finished)
    return lines


def generate(path: str, count: int, seed: int = 8) -> int:
    """Write about ``count`` lines: requests of 8 workers interleaved, as a busy server's log."""
    rng = random.Random(seed)
    moment = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
    written = 0
    open_requests: list[list[dict]] = []
    with open(path, "wb") as out:
        while written < count:
            while len(open_requests) < 8:
                open_requests.append(_request_lines(rng, moment))
            pick = open_requests[rng.randrange(len(open_requests))]
            moment += timedelta(microseconds=rng.randint(100, 4000))  # lines are written in time order
            line = pick.pop(0)
            line["timestamp"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            out.write(orjson.dumps(line) + b"\n")
            written += 1
            if not pick:
                open_requests.remove(pick)
    return written


def best_of(command: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--file", help="use this log file instead of generating one")
    parser.add_argument("--generate-only", metavar="FILE", help="write the generated log to FILE and stop")
    args = parser.parse_args()
    if args.generate_only:
        generate(args.generate_only, args.lines)
        return 0

    # byte-compile the package first, as installing it does (so start-up is not compile time)
    import flask_sigobs

    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.dirname(flask_sigobs.__file__)],
                   stdout=subprocess.DEVNULL, check=False)
    tmp = tempfile.mkdtemp(prefix="sigobs-bench-")
    path = args.file or os.path.join(tmp, "app.jsonl")
    if not args.file:
        generate(path, args.lines)
    with open(path, "rb") as f:
        lines = sum(1 for _ in f)
    size = os.path.getsize(path)
    sigobs = [sys.executable, "-m", "flask_sigobs", "tail"]
    script = shutil.which("sigobs")
    if script and os.path.dirname(script) == os.path.dirname(sys.executable):
        sigobs = [script, "tail"]
    env = {**os.environ, "TZ": "UTC"}
    env.pop("NO_COLOR", None)
    print(f"{lines:,} lines, {size / 1e6:.0f} MB ({path}); {os.cpu_count()} CPUs; "
          f"Python {sys.version.split()[0]}; best of {args.runs}")
    print(f"{'tool / mode':<58} {'seconds':>8} {'lines/s':>12}")

    def report(name: str, seconds: float) -> None:
        print(f"{name:<58} {seconds:>8.3f} {lines / seconds:>12,.0f}", flush=True)

    # the same selective filters on every line-level mode: about 1% of the lines match
    modes = [
        ("sigobs tail (rendered, colour)", ["--color=always"]),
        ("sigobs tail (rendered, no colour)", ["--color=never"]),
        ("sigobs tail --json --event auth.login_failed", ["--json", "--event", "auth.login_failed"]),
        ("sigobs tail --json --user alice --status 4xx", ["--json", "--user", "alice", "--status", "4xx"]),
        ("sigobs tail --json --level warning", ["--json", "--level", "warning"]),
        ("sigobs tail --json (no filter)", ["--json"]),
        ("sigobs tail --by-request (rendered, colour)", ["--by-request", "--color=always"]),
        ("sigobs tail --errors --json", ["--errors", "--json"]),
        ("sigobs tail --stats", ["--stats"]),
    ]
    for name, extra in modes:
        report(name, best_of([*sigobs, path, *extra], args.runs, env))

    startup = min(best_of([*sigobs, os.devnull], 1, env) for _ in range(10))
    print(f"{'sigobs tail start-up (empty file), best of 10':<58} {startup * 1000:>7.0f} ms")

    others = [
        ("jq -c .", ["jq", "-c", "."]),
        ("pino-pretty", ["pino-pretty", "--colorize"]),
        ("hl (pamburus/hl, --color always)", ["hl", "--color", "always", "-P"]),
        ("lnav -n (headless load)", ["lnav", "-n"]),
    ]
    for name, command in others:
        if shutil.which(command[0]) is None:
            print(f"{name:<58} {'(not installed)':>21}")
            continue
        if command[0] == "pino-pretty":
            run = ["sh", "-c", f"{command[0]} --colorize < '{path}'"]
        else:
            run = [*command, path]
        report(name, best_of(run, max(1, args.runs - 1), env))
    if not args.file:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
