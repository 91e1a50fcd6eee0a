"""Secrets in URL paths: the segments a route binds to a sensitive variable, replaced.

Invite and password-reset links carry their credential in the path (``/reset/<token>``,
``/projects/<project_id>/join/<string:token>``). The route says where it is: the path segments
bound to a variable whose name is sensitive (``Redactor.is_sensitive``, the same keys as query
parameters and form fields, ``SIGOBS_REDACT_KEYS`` included) are written ``[REDACTED]``, the rest
of the path as it was sent: ``/projects/kitchen/join/[REDACTED]``.

Where those segments are is worked out once per rule, from the rule's text (werkzeug's public
rule syntax, ``<converter(arguments):name>``) and the converters of its map, and kept: a request
whose rule has no sensitive variable, nearly every request, pays one dictionary look-up. The
values are not read from ``request.view_args``: those are converted (an ``int``, a model object
from a custom converter) and a ``url_value_preprocessor`` may have popped them. The plan works
on segment positions, so it applies alike to the decoded path of the log line, the WSGI
``PATH_INFO`` the standard instrumentation puts on its span, and the percent-encoded request
target.

A path no rule matched (a 404) is written as it is: no variable names to go by.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable
from urllib.parse import unquote

from werkzeug.exceptions import MethodNotAllowed
from werkzeug.routing import FloatConverter, IntegerConverter, RequestRedirect, UnicodeConverter, UUIDConverter

from .redaction import REDACTED

#: werkzeug's rule syntax (``werkzeug.routing.rules``): a slash, static text, or a variable.
_RULE_PART = re.compile(
    r"""
      (?P<slash>/)
    | (?P<static>[^</]+)
    | <(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\((?P<arguments>.*?)\))?:)?(?P<variable>[a-zA-Z_][a-zA-Z0-9_]*)>
    """,
    re.VERBOSE,
)

#: Where ``events.request_attributes`` leaves the plan of a request whose path it redacted, for
#: the span the standard instrumentation makes from the same request (``otel_setup.redact_span_path``).
PLAN_KEY = "flask_sigobs.path_plan"

#: Rules whose plan is kept: more than any app has, a bound on what a rebuilt map can leave.
MAX_RULES = 4096


class PathPlan:
    """Where one rule's sensitive variables sit in a path it matched, by ``/``-separated segment.

    ``count`` segments in the rule (the empty one before the leading slash included); the ones
    at ``sensitive`` are replaced. A converter that matches slashes (``path:``) makes its segment
    as long as the path needs: from the first such segment (``spread_from``) to the last dynamic
    segment after it (``spread_to``) the path's segments are one stretch, replaced whole when any
    variable in it is sensitive; the segments after it are counted from the end.
    """

    __slots__ = ("count", "sensitive", "spread_from", "spread_to", "slash_end", "first_dynamic")

    def __init__(self, count: int, sensitive: tuple[int, ...], spread_from: int | None, spread_to: int | None,
                 slash_end: bool, first_dynamic: int) -> None:
        self.count = count
        self.sensitive = sensitive
        self.spread_from = spread_from
        self.spread_to = spread_to
        self.slash_end = slash_end  # the rule ends with "/"
        self.first_dynamic = first_dynamic

    def _ranges(self, parts: list[str]) -> list[tuple[int, int]] | None:
        """The ``[start, stop)`` ranges of ``parts`` to replace, or None when the path does not
        have the rule's shape (then :meth:`redact` replaces everything from the first variable on)."""
        count, length = self.count, len(parts)
        if self.spread_from is None:
            if length != count:
                return None
            return [(index, index + 1) for index in self.sensitive]
        offset = length - count  # how many more segments the stretch has than the rule
        if offset < 0:
            return None
        first, last = self.spread_from, self.spread_to
        ranges = []
        stretch = False
        for index in self.sensitive:
            if index < first:
                ranges.append((index, index + 1))
            elif index <= last:
                stretch = True
            else:
                ranges.append((index + offset, index + offset + 1))
        if stretch:
            ranges.append((first, last + 1 + offset))
            ranges.sort()
        return ranges

    def _shaped(self, path: str) -> tuple[list[str], int]:
        """The path's segments, with the trailing slash the rule has or lacks evened out (werkzeug
        matches ``/a/<t>`` with ``/a/x/`` when ``strict_slashes=False``, and a slash redirect names
        the rule of ``/a/x/`` for ``/a/x``), and what to undo: -1 drop the added "", 1 put it back."""
        parts = path.split("/")
        if self.slash_end:
            if parts[-1] != "":
                parts.append("")
                return parts, -1
        elif self.spread_from is None and len(parts) == self.count + 1 and parts[-1] == "":
            parts.pop()
            return parts, 1
        return parts, 0

    def redact(self, path: str, skip: int = 0) -> str:
        """``path`` with the sensitive segments replaced; ``skip`` segments after the leading
        slash (a ``SCRIPT_NAME``'s) kept as they are, outside the rule."""
        head = ""
        if skip:
            pieces = path.split("/", skip + 1)
            if len(pieces) <= skip + 1:
                return path  # not even the prefix: nothing of the rule's
            head = "/".join(pieces[:skip + 1])
            path = "/" + pieces[skip + 1]
        parts, undo = self._shaped(path)
        ranges = self._ranges(parts)
        if ranges is None:
            # Not the rule's shape: keep what precedes its first variable, no more. (Slashes a
            # redirect would merge only move the variables further right, never into the prefix.)
            return head + "/".join([*parts[:self.first_dynamic], REDACTED])
        out: list[str] = []
        position = 0
        for start, stop in ranges:
            out.extend(parts[position:start])
            out.append(REDACTED)
            position = stop
        out.extend(parts[position:])
        if undo < 0 and out[-1] == "":
            out.pop()
        elif undo > 0:
            out.append("")
        return head + "/".join(out)

    def values(self, path: str) -> list[str]:
        """The text of each sensitive stretch of ``path`` (for the search of free text)."""
        parts, _ = self._shaped(path)
        ranges = self._ranges(parts)
        if ranges is None:
            rest = parts[self.first_dynamic:]
            return ["/".join(rest), *rest]
        return ["/".join(parts[start:stop]) for start, stop in ranges]


#: The plan of a rule that cannot be read: no path has its shape, so all but the leading slash goes.
WHOLE = PathPlan(0, (), None, None, False, 1)


def redact_url_path(value: str, plan: PathPlan, script_name: str = "") -> str:
    """A request target (``/a/b?q``) or URL (``http://host/a/b?q``) with its path redacted by
    ``plan``. The target starts with the WSGI ``SCRIPT_NAME`` when it has it (not when a proxy
    stripped the prefix): those segments are not the rule's."""
    start = 0
    if not value.startswith("/"):
        scheme = value.find("://")
        start = value.find("/", scheme + 3) if scheme >= 0 else -1
        if start < 0:
            return value
    end = len(value)
    for mark in ("?", "#"):
        found = value.find(mark, start)
        if 0 <= found < end:
            end = found
    path = value[start:end]
    skip = 0
    script = script_name.strip("/")
    if script and unquote(path, encoding="latin-1").startswith(f"/{script}/"):  # WSGI strings are latin-1
        skip = script.count("/") + 1
    return value[:start] + plan.redact(path, skip) + value[end:]


def plan_for(rule: Any, is_sensitive: Callable[[str], bool]) -> PathPlan | None:
    """The plan of ``rule``, or None when none of its variables is sensitive."""
    arguments = getattr(rule, "arguments", None) or ()
    if not any(is_sensitive(name) for name in arguments):
        return None
    text = rule.rule
    if getattr(rule, "merge_slashes", True):
        text = re.sub("/{2,}", "/", text)  # as werkzeug compiles it
    converters = getattr(getattr(rule, "map", None), "converters", None) or {}
    segments: list[list[tuple[str, int]]] = [[]]  # per segment: (variable, _FIXED | _ISOLATED | _SPANS)
    position = 0
    while position < len(text):
        match = _RULE_PART.match(text, position)
        if match is None:  # werkzeug compiled it, so this cannot be: be safe anyway
            return WHOLE
        if match.group("slash") is not None:
            segments.append([])
        elif match.group("variable") is not None:
            segments[-1].append((match.group("variable"), _kind(converters.get(match.group("converter") or "default"))))
        position = match.end()
    dynamic = [index for index, variables in enumerate(segments) if variables]
    spreading = [index for index in dynamic if any(kind == _SPANS for _, kind in segments[index])]
    spread_from = spread_to = None
    if spreading:
        spread_from = spreading[0]
        # After a converter that matches slashes werkzeug matches the rest of the path as one
        # pattern, where a converter of the app's own may match slashes too: the stretch runs to
        # the last of those (which only ever replaces more); werkzeug's own keep to one segment.
        spread_to = max(index for index in dynamic
                        if index >= spread_from and any(kind != _FIXED for _, kind in segments[index]))
    sensitive = tuple(index for index in dynamic if any(is_sensitive(name) for name, _ in segments[index]))
    if not sensitive:  # only a subdomain's or host's variable is: the path has none of it
        return None
    return PathPlan(len(segments), sensitive, spread_from, spread_to, text.endswith("/") and len(segments) > 1,
                    dynamic[0] if dynamic else len(segments))


_FIXED, _ISOLATED, _SPANS = 0, 1, 2


def _kind(converter: Any) -> int:
    """Whether a converter's value stays within one segment: werkzeug's own (but ``path``) always
    do; another that says it is ``part_isolating`` does where werkzeug matches part by part;
    an unknown converter may match slashes."""
    if converter is None or getattr(converter, "part_isolating", True) is not True:
        return _SPANS
    if converter in (UnicodeConverter, IntegerConverter, FloatConverter, UUIDConverter):
        return _FIXED
    return _ISOLATED


class RoutePaths:
    """One app's plans, by rule: ``plans[id(rule)] = (rule, plan)`` (a werkzeug ``Rule`` is
    unhashable; the rule is kept so that its ``id`` is not another's)."""

    def __init__(self, is_sensitive: Callable[[str], bool]) -> None:
        self._is_sensitive = is_sensitive
        self.plans: dict[int, tuple[Any, PathPlan | None]] = {}

    def plan(self, rule: Any) -> PathPlan | None:
        entry = self.plans.get(id(rule))
        if entry is not None and entry[0] is rule:  # every request but a rule's first: this
            return entry[1]
        try:
            plan = plan_for(rule, self._is_sensitive)
        except Exception:  # a rule we cannot read: its variables' names still decide
            sensitive = any(self._is_sensitive(name) for name in getattr(rule, "arguments", ()) or ())
            plan = WHOLE if sensitive else None
        if len(self.plans) >= MAX_RULES:
            self.plans.clear()
        self.plans[id(rule)] = (rule, plan)
        return plan

    def request_plan(self, request: Any) -> PathPlan | None:
        """The plan for a request's path: its rule's, or, when Flask kept no rule because the path
        matched one but not its method (405) or only with a slash added or merged (a redirect), the
        plan of the rule the path matched. Called only for those requests, not for every one."""
        rule = request.url_rule
        if rule is not None:
            return self.plan(rule)
        error = request.routing_exception
        if error is None:
            return None
        path = request.path
        if isinstance(error, MethodNotAllowed):
            tries = [(path, method) for method in sorted(error.valid_methods or ())]
        elif isinstance(error, RequestRedirect):
            merged = re.sub("/{2,}", "/", path)
            tries = [(merged, request.method), (merged.rstrip("/") + "/", request.method)]
        else:
            return None  # a 404: no rule to go by
        try:
            import flask

            adapter = flask.current_app.create_url_adapter(request)
        except Exception:
            return None
        plans = []
        for candidate, method in tries:
            try:
                matched, _ = adapter.match(candidate, method, return_rule=True)
            except Exception:
                continue
            plans.append(self.plan(matched))
        found = [plan for plan in plans if plan is not None]
        return found[0] if found else None


_recent = threading.local()


def remember(environ: Any, path: str, redacted: str, plan: PathPlan) -> None:
    """Note this thread's last path with a secret in it, as sent and as written: the lines the
    app logs about its request, and the dev server's request line (``"GET /reset/... HTTP/1.1"
    200``, written by werkzeug once the request is over), are searched for it (:func:`scrub_recent`)."""
    pairs = [(path, redacted)]
    target = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if target:
        sent = target.partition("?")[0]
        if sent != path:
            pairs.insert(0, (sent, redact_url_path(sent, plan, environ.get("SCRIPT_NAME") or "")))
    _recent.pairs = pairs


def scrub_recent(text: str) -> str:
    """``text`` with this thread's last secret path (:func:`remember`) written redacted."""
    pairs = getattr(_recent, "pairs", None)
    if pairs:
        for sent, redacted in pairs:
            if sent in text:
                text = text.replace(sent, redacted)
    return text
