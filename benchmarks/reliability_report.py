"""The README's reliability figures, reproduced: ``python benchmarks/reliability_report.py``.

1. Latency with a broken collector: the example-sized app under four gunicorns (one worker each)
   exporting to a working OTLP/HTTP receiver, a refused port, a black hole and a slow receiver
   (0.5 s per export); requests one at a time, round-robin, timed from connect to last byte.
2. Every reliability test (faults, load, hostile input, secrets, client address), run with
   pytest; each prints its measured figures as ``FIGURE:`` lines, collected here.

Options: ``--rounds N`` (latency rounds, default 2000), ``--skip-tests``, ``--skip-latency``.
Everything runs on 127.0.0.1; every server started is stopped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TESTS = [
    "tests/test_faults_broken_collector.py",
    "tests/test_faults_sigterm_gunicorn.py",
    "tests/test_faults_log_destination.py",
    "tests/test_faults_receiver_values.py",
    "tests/test_load_one_line_per_request.py",
    "tests/test_hostile_input.py",
    "tests/test_secrets_never_exported.py",
    "tests/test_client_address_trusted_proxies.py",
]


def latency(rounds: int) -> None:
    from tests.reliability import QUEUE_SIZE, SLOW_DELAY, broken_collectors

    with tempfile.TemporaryDirectory() as tmp:
        runs = broken_collectors(Path(tmp), rounds=rounds)
    working = runs["working"].p(0.99)
    print(f"\n## Latency with a broken collector ({rounds} rounds, 1 request at a time per server; "
          f"queue {QUEUE_SIZE}, export timeout 5 s, slow = {SLOW_DELAY} s per export)\n")
    print("| collector | requests | all 200 | p50 ms | p99 ms | p99 / working | exported | dropped | failed | "
          "SIGTERM to exit s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind, run in runs.items():
        final = run.stats[-1]
        print(f"| {kind} | {run.requests} | {set(run.statuses) == {200}} | {run.p(0.5) * 1000:.2f} | "
              f"{run.p(0.99) * 1000:.2f} | {run.p(0.99) / working:.2f} | {final['exported']} | {final['dropped']} | "
              f"{final['failed']} | {run.exit_seconds:.1f} |")


def tests() -> int:
    with tempfile.NamedTemporaryFile("r", suffix=".figures") as figures:
        env = dict(os.environ, SIGOBS_FIGURES_FILE=figures.name)
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = figures.read().splitlines()
    print("\n## Figures from the reliability tests\n")
    for line in lines:
        print(f"- {line}")
    print(f"\npytest: {result.stdout.strip().splitlines()[-1] if result.stdout.strip() else '(no output)'}")
    if result.returncode:
        print(result.stdout[-4000:])
    return result.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-tests", action="store_true")
    options = parser.parse_args()
    if not options.skip_latency:
        latency(options.rounds)
    return 0 if options.skip_tests else tests()


if __name__ == "__main__":
    sys.exit(main())
