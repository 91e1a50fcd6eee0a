"""The compatibility matrix: both ends of every supported range, on every supported Python.

flask-sigobs takes OpenTelemetry, Flask, werkzeug, blinker and structlog by ranges
(``pyproject.toml``); each row below installs one end of them and runs the test suite on it, so
CI proves every row. ``./scripts/test`` runs the whole suite in ``.venv`` (the newest set with
every extra, on the machine's ``python3``) and then these rows on the core suites (everything but
the tests marked ``slow``); ``./scripts/matrix`` runs the rows alone (``-s oldest``; pytest
arguments after ``--``). docs/compatibility.md has the table.

Virtualenvs are kept between runs under ``$SIGOBS_CACHE/nox/`` (one folder per checkout, since
each holds an editable install of it) and reused: a warm run only asks pip whether anything
changed. ``pip check`` runs on every row: a set pip would refuse together fails here first.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("SIGOBS_CACHE") or Path.home() / ".cache" / "flask-sigobs")

nox.options.sessions = ["oldest", "newest", "newest_otel"]
nox.options.envdir = str(CACHE / "nox" / f"{ROOT.name}-{hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]}")
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True  # a row that cannot run fails; it is never skipped

#: The floor of every range in pyproject.toml: SDK 1.35 and the instrumentation set that pairs
#: with it (0.56b0, both pinning semantic-conventions 0.56b0).
OLDEST = [
    "opentelemetry-api==1.35.0", "opentelemetry-sdk==1.35.0", "opentelemetry-exporter-otlp-proto-http==1.35.0",
    "opentelemetry-exporter-otlp-proto-grpc==1.35.0",
    "opentelemetry-instrumentation==0.56b0", "opentelemetry-instrumentation-flask==0.56b0",
    "flask==3.0.0", "werkzeug==3.0.0", "blinker==1.9.0", "structlog==24.1.0", "orjson==3.9.0",
]
#: What the core suites leave out: the end-to-end, load and long fault tests (``-m slow`` runs them).
CORE = ["-m", "not slow"]
#: The packages each row reports, so a log says which versions the row proved.
REPORTED = ("opentelemetry-api", "opentelemetry-sdk", "opentelemetry-instrumentation-flask", "flask", "werkzeug",
            "blinker", "structlog", "orjson", "grpcio")


def _install(session: nox.Session, extras: str, *requirements: str, upgrade: bool = False) -> None:
    session.env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    args = ["--upgrade", "--upgrade-strategy", "eager"] if upgrade else []
    session.install(*args, "-e", f".[{extras}]", *requirements)
    session.run("python", "-m", "pip", "check")
    session.run("python", "-c", "import importlib.metadata as m, sys\n"
                f"for name in {REPORTED!r}:\n"
                "    try: print(f'  {name} {m.version(name)}')\n"
                "    except m.PackageNotFoundError: print(f'  {name} (not installed)')")


def _pytest(session: nox.Session) -> None:
    session.run("python", "-m", "pytest", *(session.posargs or [*CORE, "-q", "-p", "no:randomly"]))


@nox.session(python="3.10")
def oldest(session: nox.Session) -> None:
    """The oldest supported set, every extra at its floor, on the oldest supported Python."""
    _install(session, "test,otel,grpc", *OLDEST)
    _pytest(session)


@nox.session(python="3.13")
def newest(session: nox.Session) -> None:
    """The newest of everything, the base install without [otel] (the SDK may then be a patch ahead of
    the instrumentation), on the newest supported Python: SIGOBS_SPAN_SOURCE=otel's tests skip, saying why."""
    _install(session, "test,apps,grpc", upgrade=True)
    _pytest(session)


@nox.session(python="3.12")
def newest_otel(session: nox.Session) -> None:
    """The newest set with [otel]: pip picks the newest SDK that an instrumentation release pairs with."""
    _install(session, "test,apps,otel,grpc", upgrade=True)
    _pytest(session)
