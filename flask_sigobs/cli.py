"""The ``sigobs`` command line (also ``python -m flask_sigobs`` and ``flask sigobs``).

One argparse parser with a subparser per subcommand. A subcommand is one small function,
decorated with :func:`subcommand`, that adds its parser and names the function that runs it;
the running function imports its machinery only when it is called, so that ``sigobs tail``
starts without importing Flask, OpenTelemetry or structlog (and ``sigobs --help`` without
importing anything). For example, a ``doctor`` subcommand would be::

    @subcommand
    def _doctor(subparsers: Subparsers) -> None:
        parser = subparsers.add_parser("doctor", help="check the set-up")
        parser.set_defaults(handler=lambda args, parser: _lazy("flask_sigobs.doctor").run(args))

Flask's own CLI (click) gets ``flask sigobs tail ...`` through the ``flask.commands`` entry
point: :data:`flask_group`, built on first access so that importing this module does not import
click. Its commands forward their arguments untouched to the same argparse definitions.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Callable, Sequence

Subparsers = Any  # argparse's _SubParsersAction, which has no public name
Handler = Callable[[argparse.Namespace, argparse.ArgumentParser], int]

_SUBCOMMANDS: list[Callable[[Subparsers], None]] = []


def subcommand(add: Callable[[Subparsers], None]) -> Callable[[Subparsers], None]:
    """Register a function that adds one subcommand's parser (see the module docstring)."""
    _SUBCOMMANDS.append(add)
    return add


def _lazy(module: str) -> Any:
    return importlib.import_module(module)


@subcommand
def _tail(subparsers: Subparsers) -> None:
    from .tail import options

    parser = subparsers.add_parser(
        "tail", help="read flask-sigobs JSON logs as a person: follow, filter, group, stats",
        description=options.DESCRIPTION, epilog=options.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_arguments(parser)
    parser.set_defaults(handler=lambda args, parser: _lazy("flask_sigobs.tail.command").run(args, parser))


@subcommand
def _run(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run a command with flask-sigobs attached to every Flask app it serves",
        usage="sigobs run [-h] -- COMMAND [ARG ...]",
        description="Run COMMAND (for example: gunicorn -w 4 app:app, flask --app app run, "
                    "python app.py) with flask-sigobs attached to every Flask app it creates, without "
                    "changing the app's code. OpenTelemetry is set up from the OTEL_* variables, "
                    "flask-sigobs from the SIGOBS_* ones. The same as opentelemetry-instrument does "
                    "with flask-sigobs installed, for those who do not use it.")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND",
                        help="the command and its arguments, after --")
    parser.set_defaults(handler=lambda args, parser: _lazy("flask_sigobs.bootstrap").run(args.command))


@subcommand
def _doctor(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor", help="say what flask-sigobs will do for an app, and whether its output can arrive",
        description="Load the app, say what flask-sigobs will do for it (configuration and where each "
                    "value comes from, signals, who set up OpenTelemetry and structlog, exporter, "
                    "endpoint, protocol, sampler), send a test span to the configured endpoint, and look "
                    "for the known ways to see nothing. Exit status: 0 when traces and logs will "
                    "arrive, 1 when something will keep them from arriving, 2 when the app could not "
                    "be loaded.")
    parser.add_argument("app", nargs="?", metavar="APP",
                        help="the app as Flask's --app takes it: module:app, module:create_app(), "
                             "path/to/app.py (default: FLASK_APP, or the app of 'flask --app APP')")
    parser.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="how long the test span may take (default: the exporter's own timeout, "
                             "OTEL_EXPORTER_OTLP_TIMEOUT, at most 30 s)")
    parser.add_argument("--no-test-span", dest="test_span", action="store_false",
                        help="do not send a test span")
    parser.set_defaults(handler=lambda args, parser: _lazy("flask_sigobs.doctor").run(args))


@subcommand
def _audit(subparsers: Subparsers) -> None:
    from .audit import options

    parser = subparsers.add_parser(
        "audit", help="read the audit trail of auth decisions: list, stats, verify, purge, export",
        description=options.DESCRIPTION)
    options.add_arguments(parser)
    parser.set_defaults(handler=lambda args, parser: _lazy("flask_sigobs.audit.command").run(args, parser))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sigobs", description="flask-sigobs: a Flask app's signals as correlated JSON logs and "
                                   "OpenTelemetry span events. Subcommands:")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(title="subcommands", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sigobs`` with ``argv`` (default: the process's arguments); the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler: Handler | None = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return 2
        return handler(args, _subparser(parser, args) or parser)
    except KeyboardInterrupt:  # Ctrl-C ends a command without a traceback
        return 130
    except BrokenPipeError:  # `sigobs ... | head`: the reader left; so do we, quietly
        from .tail.output import silence_stdout

        silence_stdout()
        return 0


def _subparser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser | None:
    """The chosen subcommand's own parser, so its errors show its own usage line."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if sub.get_default("handler") is getattr(args, "handler", None):
                    return sub
    return None


# -- Flask's CLI (click) ------------------------------------------------------------------------

_flask_group: Any = None


def _build_flask_group() -> Any:
    import click

    @click.group("sigobs", help="flask-sigobs tools (the same as the 'sigobs' command).")
    def group() -> None:
        pass

    def forward(name: str) -> None:
        @group.command(name, help=f"Same as 'sigobs {name}'; see 'flask sigobs {name} --help'.",
                       context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                         "help_option_names": []})
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def command(args: tuple[str, ...]) -> None:
            sys.exit(main([name, *args]))

    for add in _SUBCOMMANDS:
        for name in _names(add):
            forward(name)
    return group


def _names(add: Callable[[Subparsers], None]) -> list[str]:
    """The subcommand names a registration function adds (by letting it add them to a scratch
    parser), so the click group follows the argparse one without a second list."""
    scratch = argparse.ArgumentParser(add_help=False)
    subparsers = scratch.add_subparsers()
    add(subparsers)
    return list(subparsers.choices)


def __getattr__(name: str) -> Any:
    global _flask_group
    if name == "flask_group":
        if _flask_group is None:
            _flask_group = _build_flask_group()
        return _flask_group
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
