"""The options of ``sigobs tail``: their argparse definitions, and turning them into settings.

Kept apart from the machinery so that ``sigobs --help`` (which builds every subcommand's
parser) imports nothing heavier than argparse, and so that the click command Flask shows
(``flask sigobs tail``) forwards to exactly these definitions instead of repeating them.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from . import specs
from .filters import FilterSet, build
from .records import LEVEL_RANK

DESCRIPTION = """\
Read flask-sigobs JSON log lines (and the app's own structlog/stdlib JSON lines) the way a
person debugging a Flask app wants to: one readable line per event, filters that know the
fields, requests grouped into blocks, links to traces, and per-route/login/exception stats.
Reads the FILEs, or standard input when none is given or FILE is '-'."""

EPILOG = """\
examples:
  sigobs tail -f app.log                         follow, surviving rotation
  kubectl logs -f deploy/web | sigobs tail       a stream on standard input
  sigobs tail app.log --by-request --errors      whole requests in which something failed
  sigobs tail app.log --event 'auth.*' --user alice
  sigobs tail app.log --status 5xx --slower 500ms --since 1h
  sigobs tail app.log --where 'http.route~^/api' --json | jq .duration_ms
  sigobs tail -f app.log --stats                 a live table per route, logins, exceptions

Lines that are not JSON are shown marked with », never dropped (with --json they go to
standard error, so standard output stays JSON). Filters combine (all must hold); with
--by-request/--errors a request is shown whole when each filter matches some line of it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option of ``sigobs tail``, on the given parser."""
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="log files to read ('-' or none: standard input)")

    reading = parser.add_argument_group("reading")
    reading.add_argument("-f", "--follow", action="store_true",
                         help="keep reading as lines are appended, like 'tail -F': survives "
                              "rotation and truncation, waits for a file that does not exist yet")
    reading.add_argument("-n", "--lines", type=specs.positive_int, metavar="N", default=None,
                         help="start from the last N lines (default: all without -f, 10 with -f)")
    reading.add_argument("--poll", type=specs.duration_s, default=0.25, metavar="SECONDS",
                         help="with -f, how often to look for new lines, rotation and truncation "
                              "(default: 0.25)")

    view = parser.add_argument_group("what each line shows")
    view.add_argument("--utc", action="store_true", help="times in UTC (default: local time)")
    view.add_argument("--color", "--colour", dest="color", choices=("auto", "always", "never"),
                      default="auto", help="colour: auto (a terminal, and NO_COLOR unset), always, never")
    view.add_argument("--fields", type=specs.comma_list, metavar="A,B,C",
                      help="show these fields after the event name instead of the chosen ones")
    view.add_argument("-v", "--verbose", action="store_true",
                      help="show every key, every stack frame, and values at any length")
    view.add_argument("--jaeger", metavar="URL", default=None,
                      help="Jaeger UI base URL: each request gets the link to its trace "
                           "(default: $SIGOBS_JAEGER_URL)")
    view.add_argument("--hide-raw", action="store_true",
                      help="hide lines that are not JSON (shown marked with » by default)")

    chosen = parser.add_argument_group("filters (combinable: all must hold)")
    chosen.add_argument("--level", metavar="LEVEL",
                        help="this level and above: debug, info, warning, error, critical")
    chosen.add_argument("--event", action="append", type=specs.comma_list, metavar="GLOB",
                        help="event names, globs, comma-separated ('auth.*'); '!GLOB' excludes")
    chosen.add_argument("--trace", action="append", metavar="ID",
                        help="trace id (a prefix is enough: the 8 characters each line shows)")
    chosen.add_argument("--request-id", action="append", metavar="ID", help="request.id (a prefix is enough)")
    chosen.add_argument("--user", action="append", metavar="USER", help="enduser.id (globs allowed)")
    chosen.add_argument("--route", action="append", metavar="GLOB",
                        help="http.route or url.path, globs allowed ('/api/*')")
    chosen.add_argument("--status", type=specs.status, metavar="SPEC",
                        help="response status: 5xx, 4xx,5xx, 404, 500-504, '>=400', '!200'")
    chosen.add_argument("--slower", type=specs.slower, metavar="DURATION",
                        help="duration_ms above this: 500ms, 1.5s (a bare number is ms)")
    chosen.add_argument("--since", metavar="TIME",
                        help="lines at or after TIME: 10m, 2h, 1d ago, or ISO (2026-11-25T20:00), or HH:MM")
    chosen.add_argument("--until", metavar="TIME", help="lines at or before TIME (same forms as --since)")
    chosen.add_argument("--where", action="append", type=specs.where, metavar="COND", default=[],
                        help="any field: key=value, key!=value, key~regex, key!~regex, key>number "
                             "(>=, <, <=), or a bare key (present); repeatable")

    modes = parser.add_argument_group("modes")
    modes.add_argument("--by-request", action="store_true",
                       help="group each request's lines into one block, shown when it ends")
    modes.add_argument("--errors", action="store_true",
                       help="only requests in which something went wrong (5xx, exception, warning "
                            "or worse), each shown whole")
    modes.add_argument("--json", action="store_true",
                       help="print the original lines unchanged (same filters and grouping), for jq")
    modes.add_argument("--stats", action="store_true",
                       help="per-route count, error rate, p50/p95/p99; logins by user and address; "
                            "top exceptions (once at the end; with -f, refreshed)")
    modes.add_argument("--interval", type=specs.duration_s, default=2.0, metavar="SECONDS",
                       help="with --stats -f, seconds between refreshes (default: 2)")
    modes.add_argument("--request-timeout", type=specs.duration_s, default=30.0, metavar="SECONDS",
                       help="with --by-request, show a request that has not ended after this long, "
                            "flagged (default: 30)")
    modes.add_argument("--max-open", type=specs.positive_int, default=10_000, metavar="N",
                       help="with --by-request, at most N requests held open (default: 10000)")


@dataclass
class Settings:
    """The options, checked and in the form the machinery uses."""

    files: list[str]
    follow: bool
    last: int | None
    poll: float
    utc: bool
    color: str
    fields: list[str] | None
    verbose: bool
    jaeger: str | None
    hide_raw: bool
    filters: FilterSet
    by_request: bool
    errors: bool
    json: bool
    stats: bool
    interval: float
    request_timeout: float
    max_open: int
    problems: list[str] = field(default_factory=list)

    @property
    def grouped(self) -> bool:
        return self.by_request or self.errors


def settings(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> Settings:
    """Check the combination of options (``parser.error`` on a wrong one) and build settings."""

    def fail(message: str) -> None:
        if parser is not None:
            parser.error(message)
        raise SystemExit(f"sigobs tail: {message}")

    level_min = None
    if args.level is not None:
        level_min = LEVEL_RANK.get(args.level.strip().lower())
        if level_min is None:
            fail(f"--level: unknown level {args.level!r} (debug, info, warning, error, critical)")
    bounds = {}
    for name in ("since", "until"):
        text = getattr(args, name)
        if text is not None:
            try:
                bounds[name] = specs.time_bound(text, utc=args.utc)
            except argparse.ArgumentTypeError as error:
                fail(f"--{name}: {error}")
    if args.stats and (args.json or args.by_request or args.errors):
        fail("--stats is a view of its own: leave out --json, --by-request and --errors")
    events = [p for group in (args.event or []) for p in group]
    filters = build(level_min=level_min, events=events, traces=args.trace or (),
                    request_ids=args.request_id or (), users=args.user or (), routes=args.route or (),
                    status_codes=args.status, slower_ms=args.slower, since_bound=bounds.get("since"),
                    until_bound=bounds.get("until"), wheres=args.where or ())
    last = args.lines
    if last is None and args.follow and any(f != "-" for f in args.files):
        last = 10
    jaeger = args.jaeger if args.jaeger is not None else os.environ.get("SIGOBS_JAEGER_URL") or None
    if jaeger and not jaeger.startswith(("http://", "https://")):
        fail(f"--jaeger: expected an http(s) URL, got {jaeger!r}")
    return Settings(files=list(args.files), follow=args.follow, last=last, poll=max(args.poll, 0.01),
                    utc=args.utc, color=args.color, fields=args.fields, verbose=args.verbose,
                    jaeger=jaeger, hide_raw=args.hide_raw, filters=filters, by_request=args.by_request,
                    errors=args.errors, json=args.json, stats=args.stats, interval=max(args.interval, 0.1),
                    request_timeout=args.request_timeout, max_open=max(args.max_open, 1))
