"""The arguments of ``sigobs audit``: argparse alone, so that building the command line's parser
imports nothing of the audit trail (``sigobs tail`` starts as fast as it did)."""

from __future__ import annotations

import argparse

DESCRIPTION = """Read the audit trail: every authentication decision flask-sigobs observed, as rows
in SQLite (default: the app's instance folder) or PostgreSQL. See docs/audit.md."""
def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--db", metavar="URL", help="the audit database: an SQLAlchemy URL (sqlite:///path, "
                         "postgresql+psycopg://...) or an SQLite file (default: SIGOBS_AUDIT_URL)")
        sub.set_defaults(audit_command=name)
        return sub

    def filters(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--user", help="rows of this enduser.id")
        sub.add_argument("--ip", metavar="ADDRESS|CIDR", help="rows from this client address or network")
        sub.add_argument("--event", help="this event (login_failed or auth.login_failed)")
        sub.add_argument("--outcome", choices=("success", "failure"))
        sub.add_argument("--since", metavar="WHEN", help="from WHEN: 1h, 7d, 30m ago, or an ISO-8601 time")
        sub.add_argument("--until", metavar="WHEN", help="before WHEN (same forms as --since)")
        sub.add_argument("--trace", metavar="TRACE_ID", help="rows of this trace")

    sub = command("list", "the rows, newest last: a table, or --json one object per line")
    filters(sub)
    sub.add_argument("--limit", type=int, default=50, metavar="N", help="the newest N rows (default 50; 0: all)")
    sub.add_argument("--json", action="store_true", help="one JSON object per row, the log lines' field names")
    sub = command("stats", "per user and address: attempts, failures, successes after failures; reasons; a chart")
    filters(sub)
    sub.add_argument("--top", type=int, default=10, metavar="N", help="rows per table (default 10)")
    sub.add_argument("--json", action="store_true", help="one JSON document")
    command("verify", "check the hash chains: exit 0 when intact, 1 naming the first broken row")
    sub = command("purge", "delete rows older than a time, keeping the rest verifiable")
    sub.add_argument("--older-than", required=True, metavar="AGE", help="90d, 12w, 24h, or an ISO-8601 time")
    sub = command("export", "every row (or those filtered) for a SIEM: JSON lines or CSV")
    filters(sub)
    sub.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    sub.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
