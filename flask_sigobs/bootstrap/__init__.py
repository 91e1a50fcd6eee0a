"""``sigobs run -- COMMAND``: flask-sigobs attached to every Flask app of a command, no code changed.

``sigobs run`` puts this directory first on ``PYTHONPATH`` and runs the command in its place
(``exec``). Every Python process started from it, and from its children, imports the
``sitecustomize`` module of this directory at start-up (the way ``opentelemetry-instrument``
does it), which calls :func:`initialize`: it installs :mod:`flask_sigobs.autoattach`. Each Flask
app is then attached on its first request, and sets OpenTelemetry up from the ``OTEL_*``
variables itself (a TracerProvider, the OTLP exporter, the Flask instrumentation), in the process
that serves: under gunicorn, in each worker after the fork.

A ``sitecustomize`` module that ours hides (one of the Python installation, or
``opentelemetry-instrument``'s when both launchers are used) is run after ours.
"""

from __future__ import annotations

import importlib.util
import os
import sys

DIRECTORY = os.path.dirname(os.path.abspath(__file__))


def initialize() -> None:
    """Called by our ``sitecustomize``: install the auto-attach, then run the hidden sitecustomize."""
    try:
        from .. import autoattach

        if not autoattach.disabled():
            # The same HTTP attribute names on the span as in the events (see otel_setup.instrument).
            os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
            autoattach.install()
    except Exception as exc:  # a broken set-up must never keep the command from running
        print(f"flask-sigobs (sigobs run): not attached: {type(exc).__name__}: {exc}", file=sys.stderr)
    _run_hidden_sitecustomize()


def _run_hidden_sitecustomize() -> None:
    """The ``sitecustomize`` Python would have imported without ours, if there is one."""
    here = os.path.normcase(DIRECTORY)
    for entry in sys.path:
        try:
            if os.path.normcase(os.path.abspath(entry or os.getcwd())) == here:
                continue
        except (TypeError, ValueError):
            continue
        candidate = os.path.join(entry or os.getcwd(), "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_sigobs_hidden_sitecustomize", candidate)
            if spec is None or spec.loader is None:
                return
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                print(f"Error in sitecustomize ({candidate}); set PYTHONVERBOSE for traceback:\n"
                      f"{type(exc).__name__}: {exc}", file=sys.stderr)
            return


def command_environ(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment ``sigobs run`` gives its command: this directory first on ``PYTHONPATH``."""
    env = dict(os.environ if environ is None else environ)
    paths = [path for path in env.get("PYTHONPATH", "").split(os.pathsep) if path]
    paths = [path for path in paths if os.path.normcase(os.path.abspath(path)) != os.path.normcase(DIRECTORY)]
    cwd = os.getcwd()
    if cwd not in paths:  # as opentelemetry-instrument: `gunicorn app:app` finds app.py in the cwd
        paths.insert(0, cwd)
    env["PYTHONPATH"] = os.pathsep.join([DIRECTORY, *paths])
    env["SIGOBS_RUN"] = "1"  # for `sigobs doctor`: started by `sigobs run`
    return env


def run(command: list[str]) -> int:
    """Replace this process by ``command``, with flask-sigobs attached to its Flask apps.

    Returns only when the command cannot be started (127: not found, 126: not executable).
    """
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("sigobs run: give the command to run, e.g. sigobs run -- gunicorn -w 4 app:app", file=sys.stderr)
        return 2
    env = command_environ()
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        print(f"sigobs run: command not found: {command[0]}", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"sigobs run: permission denied: {command[0]}", file=sys.stderr)
        return 126
    return 0  # not reached: exec does not return
