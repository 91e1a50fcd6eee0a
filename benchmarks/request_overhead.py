"""What each request pays: flask-sigobs beside bare Flask, the standard instrumentation and peers.

    python benchmarks/request_overhead.py                 # in-process table (a minute or two)
    python benchmarks/request_overhead.py --memory        # + resident memory, 10k vs 100k requests
    python benchmarks/request_overhead.py --server        # + gunicorn on loopback under wrk
    python benchmarks/request_overhead.py --instructions  # + instructions per request (valgrind)
    python benchmarks/request_overhead.py --markdown FILE # + the tables as Markdown, for docs/speed.md
    python benchmarks/request_overhead.py --variants bare,otel,otel-otlp,sigobs,sigobs-otlp  # only these

Each variant runs in its own worker process (the peers patch Flask globally), the app's WSGI
callable called directly on one small route. The parent interleaves rounds across the workers,
so a noisy neighbour hits every variant alike, and reports medians in microseconds per request
and each ratio to bare Flask. It prints numbers; it does not pass or fail.

The first variants send their spans to an exporter that drops them (what the request pays); the
exporting ones (``apps.EXPORT_VARIANTS``) send them for real to ``benchmarks/discard.py``, a
server in another process on loopback that counts what arrives and discards it: its CPU is not
the variants', theirs (the export thread's, gRPC's own threads') is, since a worker's time is
its whole process's. Each exporting worker flushes at the end, and the table says how many of
the spans it made reached the endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.apps import EXPORT_VARIANTS, VARIANTS, flush, make, path_taken  # noqa: E402

PATH = "/items/7"

#: How each variant is named in the Markdown table (docs/speed.md).
LABELS = {
    "bare": "bare Flask",
    "otel": "`opentelemetry-instrumentation-flask` alone (the standard)",
    "handwritten": "the standard + a hand-written structlog JSON access line with trace ids and a span event",
    "sigobs-otel-span": "flask-sigobs on the standard instrumentation's span (`SIGOBS_SPAN_SOURCE=otel`)",
    "sigobs": "**flask-sigobs, default settings** (span built from the signals)",
    "sigobs-line-by-line": "flask-sigobs writing each line at once (`SIGOBS_LOG_FLUSH_INTERVAL=0`)",
    "otel-metrics": "the standard with its HTTP server metrics (a MeterProvider)",
    "sigobs-metrics": "flask-sigobs, default settings, with its HTTP server metrics on",
    "sigobs-public-api": "flask-sigobs, default settings, through the SDK's public API (`SIGOBS_FAST_PATH=off`)",
    "sigobs-otel-span-public-api": "flask-sigobs on the standard span, through the public API (`SIGOBS_FAST_PATH=off`)",
    "elastic-apm": "elastic-apm's Flask integration (sending disabled)",
    "sentry": "sentry-sdk's Flask integration, tracing on (a transport that drops)",
    "otel-otlp": "`opentelemetry-instrumentation-flask` alone (the standard), OTLP/HTTP",
    "otel-otlp-grpc": "the standard alone, OTLP/gRPC",
    "sigobs-no-export": "flask-sigobs, default settings, no span processor (no endpoint: nothing queued or sent)",
    "sigobs-otlp": "**flask-sigobs, default settings**, its own provider from `OTEL_EXPORTER_OTLP_ENDPOINT`, "
                   "OTLP/HTTP",
    "sigobs-otlp-grpc": "flask-sigobs, default settings, its own provider, OTLP/gRPC "
                        "(`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`)",
    "sigobs-app-provider-otlp": "flask-sigobs, default settings, the app's own provider + `BatchSpanProcessor` + "
                                "`OTLPSpanExporter`",
    "sigobs-otel-span-otlp": "flask-sigobs on the standard span (`SIGOBS_SPAN_SOURCE=otel`), its own provider, "
                             "OTLP/HTTP",
    "sigobs-otlp-direct-writer": "flask-sigobs, default settings, its own provider, OTLP/HTTP written by the "
                                 "prototype direct writer (`benchmarks/otlp_direct.py`; not in the library)",
    "elastic-apm-send": "elastic-apm's Flask integration, sending to a local APM server endpoint",
    "sentry-send": "sentry-sdk's Flask integration, tracing on, sending to a local DSN",
}
#: The variant each table puts in bold.
HEADLINE = ("sigobs", "sigobs-otlp")
#: The packages whose versions a run depends on most, named with its table.
VERSIONS = ("flask", "werkzeug", "opentelemetry-sdk", "opentelemetry-instrumentation-flask", "structlog",
            "sentry-sdk", "elastic-apm")


def _environ() -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    return EnvironBuilder(path=PATH, headers={"User-Agent": "bench/1.0"},
                          environ_base={"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000"}).get_environ()


def _runner(app: Any, flush: Any = None) -> Any:
    """``run(count)``: ``count`` requests, and with ``flush``, everything they made handed to the
    exporter and sent before the clock stops (a round's last partial batch would otherwise leave
    on the batch processor's timer while the worker waits for its next round: uncounted)."""
    base = _environ()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        pass

    def run(count: int) -> tuple[float, float]:
        # CPU time of this process (all its threads, the batch processor's included): what the
        # requests cost, without the time other processes on this small machine took the CPU.
        # The request thread's own share is taken too: the rest is the other threads' (export).
        begin = time.process_time_ns()
        begin_thread = time.thread_time_ns()
        for _ in range(count):
            body = app(dict(base), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        if flush is not None:
            flush()
        process = time.process_time_ns() - begin
        other = process - (time.thread_time_ns() - begin_thread)
        return process / count / 1000, other / count / 1000

    return run


class _DropCounter:
    """Counts the SDK batch processor's "Queue full, dropping Span." warnings (one per span)."""

    def __init__(self) -> None:
        import logging

        self.count = 0
        handler = logging.Handler()
        handler.emit = self._seen  # type: ignore[method-assign]
        logging.getLogger("opentelemetry.sdk._shared_internal").addHandler(handler)

    def _seen(self, record: Any) -> None:
        if "dropping" in record.getMessage():
            self.count += 1


def worker(variant: str) -> None:
    """Serve 'N' commands on stdin: run N requests, answer microseconds per request (the process's
    and its threads' other than the request thread's); at the end, send what is left and say how
    many of the spans the batch processor dropped because its queue was full."""
    drops = _DropCounter()
    app = make(variant)
    run = _runner(app, flush)
    run(1000)  # warm up: caches, first-use set-up, lazy imports
    served = 1000
    print(f"ready {path_taken(app)}", flush=True)
    for line in sys.stdin:
        print("%.3f %.3f" % run(int(line)), flush=True)
        served += int(line)
    flush(final=True)  # what is still queued reaches the endpoint before discard.py is asked what arrived
    from flask_sigobs import spanqueue

    print(f"{drops.count + spanqueue.dropped_spans()} {served}", flush=True)


class Discard:
    """benchmarks/discard.py in a process of its own: one loopback listener per exporting variant."""

    def __init__(self, variants: list[str], kinds: dict[str, str | None] = EXPORT_VARIANTS) -> None:
        specs = [f"{v}:{kinds[v]}" for v in variants if kinds.get(v)]
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "benchmarks", "discard.py"), *specs],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise SystemExit("benchmarks/discard.py failed to start")
        self.addresses: dict[str, str] = json.loads(line)

    def received(self) -> dict[str, dict[str, int]]:
        self.process.stdin.write("\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.process.stdout.readline())  # type: ignore[union-attr]

    def stop(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _available(variant: str) -> bool:
    modules = {"elastic-apm": "elasticapm", "sentry": "sentry_sdk", "elastic-apm-send": "elasticapm",
               "sentry-send": "sentry_sdk", "otel-otlp-grpc": "opentelemetry.exporter.otlp.proto.grpc",
               "sigobs-otlp-grpc": "opentelemetry.exporter.otlp.proto.grpc"}
    if variant not in modules:
        return True
    try:
        __import__(modules[variant])
        return True
    except ImportError:
        return False


def compare(rounds: int, count: int, chosen: list[str] | None = None) -> list[dict[str, Any]]:
    variants = [v for v in VARIANTS if _available(v) and (chosen is None or v in chosen or v in ("bare", "otel"))]
    discard = Discard(variants)
    workers = {}
    for variant in variants:
        env = dict(os.environ)
        if variant in discard.addresses:
            env["SIGOBS_BENCH_ENDPOINT"] = discard.addresses[variant]
        workers[variant] = subprocess.Popen(
            [sys.executable, __file__, "--worker", variant], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, cwd=ROOT, env=env)
    paths: dict[str, str] = {}
    for variant, process in workers.items():
        said = process.stdout.readline().strip()  # type: ignore[union-attr]
        if not said.startswith("ready"):
            raise SystemExit(f"worker {variant} failed to start")
        paths[variant] = said[len("ready "):] or "-"
    samples: dict[str, list[float]] = {v: [] for v in variants}
    others: dict[str, list[float]] = {v: [] for v in variants}
    try:
        for _ in range(rounds):
            order = variants[:]
            random.shuffle(order)
            for variant in order:
                process = workers[variant]
                process.stdin.write(f"{count}\n")  # type: ignore[union-attr]
                process.stdin.flush()  # type: ignore[union-attr]
                cpu, other = process.stdout.readline().split()  # type: ignore[union-attr]
                samples[variant].append(float(cpu))
                others[variant].append(float(other))
    finally:
        drops = {}
        for variant, process in workers.items():
            process.stdin.close()  # type: ignore[union-attr]
        for variant, process in workers.items():
            last = process.stdout.readline().split()  # type: ignore[union-attr]
            drops[variant] = (int(last[0]), int(last[1])) if len(last) == 2 else None
            process.wait(60)
        received = discard.received()
        discard.stop()
    medians = {v: statistics.median(s) for v, s in samples.items()}
    bare = medians["bare"]
    print(f"\nIn-process, {rounds} interleaved rounds of {count} requests to GET {PATH} "
          f"(median CPU microseconds per request; ratio to bare Flask; spread = min..max of rounds; "
          f"per round = the middle half of each round's own ratio to bare Flask, and to otel, which a "
          f"noisy moment shared by both sways less; other threads = the CPU of threads other than the "
          f"request thread, the export thread's included, per request; received = spans the endpoint "
          f"(benchmarks/discard.py) decoded, of the requests served)")
    print(f"{'variant':<28}{'us/request':>11}{'x bare':>8}{'x otel':>8}   {'spread':<14}{'per round':<13}"
          f"{'per round':<13}{'other':>7}  {'path':<12}{'dropped':<16}received")
    print(f"{'':<28}{'':>11}{'':>8}{'':>8}   {'':<14}{'x bare':<13}{'x otel':<13}{'threads':>7}")
    rows = []
    for variant in variants:
        spread = f"{min(samples[variant]):.1f}..{max(samples[variant]):.1f}"
        per_round = _middle_half([mine / theirs for mine, theirs in zip(samples[variant], samples["bare"])])
        per_round_otel = _middle_half([mine / theirs for mine, theirs in zip(samples[variant], samples["otel"])])
        dropped = drops.get(variant)
        said = "-" if dropped is None or variant in ("bare", "elastic-apm", "sentry", "elastic-apm-send",
                                                     "sentry-send") else f"{dropped[0]} of {dropped[1]}"
        got = "-"
        if variant in received:
            spans = received[variant]["spans"]
            got = f"{spans} of {dropped[1]}" if dropped else str(spans)
            if dropped and spans < dropped[1]:
                got += f" ({dropped[1] - spans} LOST)"  # dropped by a full queue, or never sent
        other = statistics.median(others[variant])
        print(f"{variant:<28}{medians[variant]:>11.1f}{medians[variant] / bare:>8.2f}"
              f"{medians[variant] / medians['otel']:>8.2f}   {spread:<14}{per_round:<13}{per_round_otel:<13}"
              f"{other:>7.1f}  {paths[variant]:<12}{said:<16}{got}")
        rows.append({"variant": variant, "us": medians[variant], "x_bare": medians[variant] / bare,
                     "x_otel": medians[variant] / medians["otel"], "per_round": per_round,
                     "per_round_otel": per_round_otel, "path": paths[variant], "dropped": said,
                     "other": other, "received": got})
    posts = sum(counts["requests"] for name, counts in received.items() if name != "cpu_s")
    if posts:
        print(f"\nthe endpoint (benchmarks/discard.py, its own process) took {received['cpu_s']:.2f} s of CPU for "
              f"{posts} export requests, {received['cpu_s'] / posts * 1000:.2f} ms each (decoding included), "
              f"while the exporters waited for its answers")
    return rows


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def markdown(rows: list[dict[str, Any]], rounds: int, count: int) -> str:
    """The in-process table as Markdown, with what a reader needs to weigh it: the date, the
    machine (cores, Python, OS) and the versions of the packages measured."""
    versions = ", ".join(f"{name} {version}" for name in VERSIONS if (version := _version(name)))
    head = (f"Measured on {time.strftime('%Y-%m-%d')} with `benchmarks/request_overhead.py --rounds {rounds}"
            f"{'' if count == 2000 else f' --requests {count}'}`: {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()} ({platform.machine()}); "
            f"{versions}. Median CPU time per request of {rounds} interleaved rounds of {count} requests; "
            f"\"middle half\" is the first to third quartile of each round's own ratio to bare Flask.")
    lines = [head]
    exporting = [row for row in rows if row["variant"] in EXPORT_VARIANTS]
    dropping = [row for row in rows if row["variant"] not in EXPORT_VARIANTS]
    if exporting:
        bare = next(row for row in rows if row["variant"] == "bare")
        lines += ["", "With real export (each variant sends to a local endpoint in another process that decodes, "
                  "counts and discards; \"other threads\" is the CPU per request of threads other than the "
                  "request's, the export thread's included, counted in the total):", "",
                  "| variant | CPU us / request | x bare Flask | middle half, x bare | other threads, us | "
                  "spans dropped | spans received |", "|---|---:|---:|---:|---:|---:|---:|"]
        for row in [bare] + exporting:
            mark = "**" if row["variant"] in HEADLINE else ""
            lines.append(f"| {LABELS.get(row['variant'], row['variant'])} | {mark}{row['us']:.1f}{mark} "
                         f"| {mark}{row['x_bare']:.2f}{mark} | {row['per_round']} | {row['other']:.1f} "
                         f"| {'' if row['dropped'] == '-' else row['dropped']} "
                         f"| {'' if row['received'] == '-' else row['received']} |")
        lines += ["", "With an exporter that drops (what the request itself pays):"]
    lines += ["", "| variant | CPU us / request | x bare Flask | x standard | middle half, x bare | path | spans dropped |",
              "|---|---:|---:|---:|---:|---|---:|"]
    for row in dropping:
        mark = "**" if row["variant"] in HEADLINE else ""
        dropped = "" if row["dropped"] == "-" else f"{mark}{row['dropped']}{mark}"
        figures = (f"{mark}{row['us']:.1f}{mark}", f"{mark}{row['x_bare']:.2f}{mark}",
                   f"{mark}{row['x_otel']:.2f}{mark}")
        lines.append(f"| {LABELS.get(row['variant'], row['variant'])} | {' | '.join(figures)} "
                     f"| {row['per_round']} | {row['path']} | {dropped} |")
    return "\n".join(lines) + "\n"


def _middle_half(ratios: list[float]) -> str:
    """The first and third quartiles of ``ratios``, as ``q1..q3``."""
    if len(ratios) < 2:
        return "-"
    first, _, third = statistics.quantiles(ratios, n=4)
    return f"{first:.2f}..{third:.2f}"


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def memory_worker() -> None:
    """flask-sigobs with its real OTLP exporter aimed at a port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
    from flask import Flask

    from flask_sigobs import SigObs

    app = Flask("memory")
    app.route("/items/<int:item_id>")(lambda item_id: f"item {item_id}")
    app.config["SIGOBS_LOG_FILE"] = os.path.join(tempfile.mkdtemp(), "memory.log")
    app.config["SIGOBS_SPAN_SOURCE"] = os.environ.get("SIGOBS_BENCH_SPAN_SOURCE", "signals")
    sigobs = SigObs(app)
    run = _runner(app)
    run(10_000)
    at_10k = _rss_kib()
    begin = time.perf_counter()
    run(90_000)
    elapsed = time.perf_counter() - begin
    at_100k = _rss_kib()
    from flask_sigobs import spanqueue

    accounts = spanqueue.accounts()
    print(f"RSS after 10,000 requests: {at_10k / 1024:.1f} MiB; after 100,000: {at_100k / 1024:.1f} MiB "
          f"(+{(at_100k - at_10k) / 1024:.1f} MiB); {90_000 / elapsed:.0f} requests/s with the endpoint "
          f"refused; of 100,000 spans: {accounts['dropped']} dropped (queue full), {accounts['failed']} "
          f"failed to export, {accounts['exported']} exported, {accounts.get('queued', 0)} still queued")
    del sigobs


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_run(seconds: int) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("\nreal-server run skipped: wrk is not installed (apt-get install wrk)")
        return
    results = {}
    for variant in ("bare", "otel", "sigobs", "sigobs-otel-span"):
        port = _free_port()
        env = dict(os.environ, SIGOBS_BENCH_LOG_DIR=tempfile.mkdtemp())
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
             f'benchmarks.apps:make("{variant}")'], cwd=ROOT, env=env, start_new_session=True)
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.2)
            subprocess.run([wrk, "-t1", "-c4", "-d2s", f"http://127.0.0.1:{port}{PATH}"], capture_output=True)
            out = subprocess.run([wrk, "-t1", "-c4", f"-d{seconds}s", f"http://127.0.0.1:{port}{PATH}"],
                                 capture_output=True, text=True).stdout
            rps = float(next(line for line in out.splitlines() if line.startswith("Requests/sec")).split()[1])
            results[variant] = rps
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
    print(f"\ngunicorn (1 sync worker) on loopback, wrk -t1 -c4 -d{seconds}s, requests per second:")
    for variant, rps in results.items():
        print(f"{variant:<18}{rps:>10.0f} req/s{rps / results['bare']:>8.2f} x bare"
              f"{rps / results['otel']:>8.2f} x otel")


def count_worker(variant: str, count: int) -> None:
    """Serve ``count`` requests and exit: run under valgrind by :func:`instructions`."""
    run = _runner(make(variant))
    run(count)


#: Requests of the short and the long run: their difference cancels start-up and warm-up.
SHORT, LONG = 1000, 5000


def _instructions(variant: str, count: int, valgrind: str) -> int:
    result = subprocess.run(
        [valgrind, "--tool=cachegrind", "--cache-sim=no", "--fair-sched=yes", "--cachegrind-out-file=/dev/null",
         sys.executable, __file__, "--count-worker", variant, "--requests", str(count)],
        capture_output=True, text=True, cwd=ROOT, check=True)
    line = next(line for line in result.stderr.splitlines() if "I   refs:" in line or "I refs:" in line)
    return int(line.split(":")[1].replace(",", "").strip())


def instructions() -> None:
    """Instructions per request under valgrind (cachegrind), the long run less the short one: a
    count this machine's noise does not move (to within about 0.5%), where CPU time moves by a
    few percent from one run to the next. It leaves out what memory costs (cache misses), so its
    ratios are lower than the CPU time's."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("\ninstruction counts skipped: valgrind is not installed (apt-get install valgrind)")
        return
    from concurrent.futures import ThreadPoolExecutor

    variants = [v for v in VARIANTS if _available(v) and v not in EXPORT_VARIANTS]  # no endpoint here
    jobs = [(v, n) for v in variants for n in (SHORT, LONG)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: _instructions(*job, valgrind), jobs)))
    per_request = {v: (counts[v, LONG] - counts[v, SHORT]) / (LONG - SHORT) for v in variants}
    print(f"\nInstructions per request under valgrind (cachegrind; {LONG} requests less {SHORT}):")
    for variant in variants:
        mine = per_request[variant]
        print(f"{variant:<20}{mine:>11,.0f}{mine / per_request['bare']:>8.2f} x bare"
              f"{mine / per_request['otel']:>8.2f} x otel")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count-worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--variants", help="only these variants, comma-separated (bare and otel always run)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per round per variant")
    parser.add_argument("--memory", action="store_true", help="also measure memory over 100,000 requests")
    parser.add_argument("--server", action="store_true", help="also run gunicorn under wrk")
    parser.add_argument("--seconds", type=int, default=8, help="wrk duration per variant")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the in-process table as Markdown to FILE (for docs/speed.md)")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per request under valgrind (a few minutes)")
    args = parser.parse_args()
    if args.count_worker:
        count_worker(args.count_worker, args.requests)
        return
    if args.worker:
        worker(args.worker)
        return
    if args.memory_worker:
        memory_worker()
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    rows = compare(args.rounds, args.requests, args.variants.split(",") if args.variants else None)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as out:
            out.write(markdown(rows, args.rounds, args.requests))
        print(f"\nwrote {args.markdown}")
    if args.memory:
        print()
        for source in ("otel", "signals"):
            env = dict(os.environ, SIGOBS_BENCH_SPAN_SOURCE=source)
            print(f"memory, span source {source}: ", end="", flush=True)
            subprocess.run([sys.executable, __file__, "--memory-worker"], env=env, cwd=ROOT, check=True)
    if args.server:
        server_run(args.seconds)
    if args.instructions:
        instructions()


if __name__ == "__main__":
    main()
