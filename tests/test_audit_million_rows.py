"""A trail of a million rows on SQLite: ``sigobs audit list`` with a filter and ``sigobs audit stats``
answer within 2 seconds (the real command, process start included; the best of three runs, so a
neighbour's burst on a shared machine is not taken for our time). Marked ``slow``: the trail is
generated once (about a minute) and kept in $SIGOBS_CACHE for the next run."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flask_sigobs.audit.store import SCHEMA_VERSION

from .audit_support import generate

pytestmark = pytest.mark.slow
ROWS = 1_000_000
LIMIT_S = 2.0


@pytest.fixture(scope="module")
def million() -> str:
    cache = Path(os.environ.get("SIGOBS_CACHE") or Path.home() / ".cache" / "flask-sigobs")
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"audit-{ROWS}-rows-v{SCHEMA_VERSION}-2.db"
    with open(cache / "audit-million.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one helper builds it; the others wait for it
        if not path.exists():
            partial = path.with_suffix(".partial")
            for stale in partial.parent.glob(partial.name + "*"):
                stale.unlink()
            generate("sqlite:///" + str(partial), ROWS)
            for suffix in ("-wal", "-shm"):
                Path(str(partial) + suffix).unlink(missing_ok=True)
            partial.rename(path)
    return "sqlite:///" + str(path)


def best_of_three(*args: str) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(3):
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "flask_sigobs", "audit", *args], capture_output=True, text=True,
                              timeout=120)
        times.append(time.monotonic() - started)
        assert done.returncode == 0, done.stderr
        out = done.stdout
    return min(times), out


@pytest.mark.parametrize("filters", [
    ["--user", "user42"],
    ["--ip", "10.3.0.0/16", "--outcome", "failure"],
    ["--event", "login_failed", "--since", "1d"],
    ["--ip", "10.7.7.7"],
])
def test_list_with_a_filter_answers_within_two_seconds(million: str, filters: list[str]) -> None:
    took, out = best_of_three("list", "--db", million, *filters)
    assert took < LIMIT_S, f"{took:.2f} s"
    assert out.startswith("time")


@pytest.mark.parametrize("filters", [[], ["--since", "7d"], ["--outcome", "failure"], ["--ip", "10.3.0.0/16"]])
def test_stats_answers_within_two_seconds(million: str, filters: list[str]) -> None:
    took, out = best_of_three("stats", "--db", million, *filters)
    assert took < LIMIT_S, f"{took:.2f} s"
    assert "per user" in out and "failures over time" in out
