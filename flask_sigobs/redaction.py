"""Redaction and bounding: what makes any value safe to write before it is written.

Every attribute of every event passes through :meth:`Redactor.clean` before either output sees
it, so the log sink and the trace sink never have to think about secrets, cycles, objects whose
``__str__`` raises, or a 10 MB string: what reaches them is small, JSON-safe and redacted.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping
from urllib.parse import quote, quote_plus, unquote_plus

REDACTED = "[REDACTED]"

#: Where :func:`Redactor.request_secrets` leaves a request's secrets in its WSGI environ, so the
#: span can be scrubbed when it ends (``otel_setup.release_end``).
SECRETS_KEY = "flask_sigobs.secrets"

#: A sensitive value shorter than this is not searched for in free text (an exception message):
#: "1" or "yes" would match everywhere and say nothing about the secret anyway.
MIN_SECRET_LENGTH = 4
MAX_SECRETS = 64

#: Substrings that make a key sensitive (matched case-insensitively, ``-`` read as ``_``), so
#: ``X-CSRFToken``, ``new_password``, ``client_secret`` and ``Set-Cookie`` are all caught.
SENSITIVE_KEYS = (
    "password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "authorization",
    "cookie", "session", "csrf", "private_key", "credential",
)

MAX_ITEMS = 50
MAX_DEPTH = 6
_SCALARS = (bool, int, float, type(None))
_INT_LIMIT = 2**63 - 1

#: What JSON leaves raw but a terminal still obeys: DEL and the C1 controls (U+009B is a CSI),
#: and lone surrogates, which cannot be written as UTF-8 at all. C0 controls (newline, ESC, NUL)
#: are escaped by the JSON encoder itself.
_UNSAFE = re.compile("[\x7f-\x9f\ud800-\udfff]")


def _escape_unsafe(match: "re.Match[str]") -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with DEL, C1 controls and lone surrogates written as visible escapes."""
    if text.isascii() and "\x7f" not in text:  # the common case, without the regex
        return text
    return _UNSAFE.sub(_escape_unsafe, text) if _UNSAFE.search(text) else text


#: What :func:`cut` may add to a text it cuts: the ``...[N more chars]`` marker.
MARKER_ROOM = 64


def cut(text: str, limit: int) -> str:
    """``text`` bounded to ``limit`` characters, saying how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more chars]"


def _unprintable(value: Any) -> str:
    try:
        return f"<unprintable {type(value).__name__}>"
    except Exception:  # a metaclass can break even this
        return "<unprintable>"


class Redactor:
    """Knows which keys are secret and how big a value may be; one per app, built at init."""

    def __init__(self, extra_keys: Iterable[str] = (), max_length: int = 1024) -> None:
        keys = sorted({*SENSITIVE_KEYS, *(k.lower().replace("-", "_") for k in extra_keys)})
        self._pattern = re.compile("|".join(re.escape(k) for k in keys))
        self._verdicts: dict[str, bool] = {}
        self.max_length = max_length
        self.longest = max_length + MARKER_ROOM  # no text this redactor yields is longer
        from .paths import RoutePaths  # here: that module imports this one's REDACTED

        self.paths = RoutePaths(self.is_sensitive)  # which path segments of a route are secret

    def is_sensitive(self, key: str) -> bool:
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._pattern.search(key.lower().replace("-", "_")) is not None
            if len(self._verdicts) < 4096:  # bounded: keys can come from hostile input
                self._verdicts[key] = verdict
        return verdict

    def text(self, value: str) -> str:
        """Bound a string, saying how much was cut; escape what a terminal or UTF-8 can't take."""
        if len(value) <= self.max_length and value.isascii() and "\x7f" not in value:
            return value  # the common case (a method, a path, a user agent), without two calls
        return escape(cut(value, self.max_length))

    def clean(self, value: Any, depth: int = 0) -> Any:
        """A JSON-safe, bounded, redacted copy of ``value``; never raises."""
        try:
            kind = type(value)
            if kind is str:
                return self.text(value)
            if kind in _SCALARS or isinstance(value, _SCALARS):
                if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT_LIMIT:
                    return str(value)
                return value
            if isinstance(value, (bytes, bytearray, memoryview)):
                raw = bytes(value[: self.max_length * 4])
                return self.text(raw.decode("utf-8", "backslashreplace"))
            if depth >= MAX_DEPTH:
                return f"<{kind.__name__} nested too deep>"
            if isinstance(value, Mapping):
                return self.mapping(value, depth + 1)
            if isinstance(value, (list, tuple, set, frozenset)):
                items = list(value)[: MAX_ITEMS + 1] if isinstance(value, (set, frozenset)) else value[: MAX_ITEMS + 1]
                cleaned = [self.clean(item, depth + 1) for item in items[:MAX_ITEMS]]
                if len(value) > MAX_ITEMS:
                    cleaned.append(f"...[{len(value) - MAX_ITEMS} more items]")
                return cleaned
            if isinstance(value, str):  # a str subclass: keep the text, drop the class
                return self.text(str.__str__(value))
            return self.text(str(value))
        except Exception:
            return _unprintable(value)

    def mapping(self, values: Mapping[Any, Any], depth: int = 0) -> dict[str, Any]:
        """Clean a mapping, replacing the value of every sensitive key."""
        out: dict[str, Any] = {}
        try:
            for index, (key, value) in enumerate(values.items()):
                if index == MAX_ITEMS:
                    out["..."] = f"[{len(values) - MAX_ITEMS} more keys]"
                    break
                name = key if type(key) is str else self.clean(key, MAX_DEPTH)
                if not isinstance(name, str):
                    name = str(name)
                name = self.text(name)
                out[name] = REDACTED if self.is_sensitive(name) else self.clean(value, depth)
        except Exception:
            out["..."] = _unprintable(values)
        return out

    def query(self, query: str) -> str:
        """A URL query string with the values of sensitive parameters replaced."""
        if not query or self._pattern.search(query.lower().replace("-", "_")) is None:
            return self.text(query)
        parts = []
        for part in query.split("&"):
            name, sep, _ = part.partition("=")
            if self.is_sensitive(unquote_plus(name)):
                part = f"{name}={REDACTED}"
            parts.append(part)
        return self.text("&".join(parts))

    # -- secrets echoed in free text ---------------------------------------------------------

    def request_secrets(self, request: Any) -> tuple[str, ...]:
        """The values of ``request``'s sensitive fields, in every form text may echo them.

        Sensitive headers (``Authorization`` and the token after its scheme, the password of
        Basic credentials, ``Cookie``, ``X-API-Key``, ...), cookies, query parameters, form fields
        and JSON body keys, the last two only when the app has parsed the body already (reading
        it here could mean reading a large upload), and path segments bound to a sensitive route
        variable (``/reset/<token>``). Longest first, for :func:`scrub`.
        """
        found: list[str] = []

        def add(value: Any) -> None:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if isinstance(value, str) and len(value.strip()) >= MIN_SECRET_LENGTH and len(found) < MAX_SECRETS:
                found.append(value)

        environ = request.environ
        for key, value in environ.items():
            if key.startswith("HTTP_") and isinstance(value, str) and self.is_sensitive(key[5:]):
                add(value)
                scheme, _, credentials = value.strip().partition(" ")
                add(credentials.strip())
                if scheme.lower() == "basic":
                    try:
                        add(request.authorization.password)
                    except Exception:
                        pass
        try:
            for name, value in request.cookies.items(multi=True):
                if self.is_sensitive(name):
                    add(value)
        except Exception:
            pass
        query = environ.get("QUERY_STRING") or ""
        if query:
            for part in query.split("&"):  # as sent, percent-encoded, and decoded
                name, sep, value = part.partition("=")
                if sep and self.is_sensitive(unquote_plus(name)):
                    add(value)
                    add(unquote_plus(value))
        try:
            plan = self.paths.request_plan(request)
            if plan is not None:
                for value in plan.values(request.path):
                    add(value)
        except Exception:
            pass
        form = vars(request).get("form")  # werkzeug caches the parsed form in the instance dict
        if form:
            for name, value in form.items(multi=True):
                if self.is_sensitive(name):
                    add(value)
        for parsed in getattr(request, "_cached_json", ()):
            if parsed is not Ellipsis:
                self._json_secrets(parsed, add, 0)
        return _variants(found)

    def _json_secrets(self, value: Any, add: Any, depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        if isinstance(value, dict):
            for key, item in list(value.items())[:MAX_ITEMS * 4]:
                if isinstance(key, str) and self.is_sensitive(key):
                    for leaf in _leaves(item, depth):
                        add(leaf)
                else:
                    self._json_secrets(item, add, depth + 1)
        elif isinstance(value, list):
            for item in value[:MAX_ITEMS * 4]:
                self._json_secrets(item, add, depth + 1)


def _leaves(value: Any, depth: int) -> list[Any]:
    if depth > MAX_DEPTH:
        return []
    if isinstance(value, dict):
        return [leaf for item in list(value.values())[:MAX_ITEMS] for leaf in _leaves(item, depth + 1)]
    if isinstance(value, list):
        return [leaf for item in value[:MAX_ITEMS] for leaf in _leaves(item, depth + 1)]
    return [value]


def _variants(values: list[str]) -> tuple[str, ...]:
    """Each value as sent, percent-encoded, and escaped the way ``repr`` and JSON write it."""
    out: set[str] = set()
    for value in values:
        out.add(value)
        for variant in (quote_plus(value), quote(value, safe=""), repr(value)[1:-1],
                        json.dumps(value)[1:-1], escape(value)):
            if len(variant) >= MIN_SECRET_LENGTH:
                out.add(variant)
    return tuple(sorted(out, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of every secret replaced by ``[REDACTED]``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


#: Attributes that hold the text of common exceptions whose ``str`` does not come from ``args``.
_TEXT_ATTRIBUTES = ("filename", "filename2", "strerror", "msg", "reason", "text", "object", "description")


def scrub_exception(exc: BaseException, secrets: tuple[str, ...]) -> None:
    """Replace the secrets an exception echoes, in place: its args, text attributes and notes.

    Done when the app's exception is first seen (``got_request_exception``), so everything that
    prints it later says ``[REDACTED]`` too: Flask's own error log line, the instrumentation's
    ``exception`` span event and status, an error reporter. Its ``__cause__`` and ``__context__``
    are scrubbed the same way.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    chain = [exc]
    while chain and len(seen) < 16:
        current = chain.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        try:
            _scrub_one(current, secrets)
        except Exception:  # an exception type that refuses new values: the outputs still scrub
            pass
        chain.extend((current.__cause__, current.__context__))


def _scrub_value(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, (tuple, list)) and any(isinstance(v, str) for v in value):
        return type(value)(scrub(v, secrets) if isinstance(v, str) else v for v in value)
    return value


def _scrub_one(exc: BaseException, secrets: tuple[str, ...]) -> None:
    args = exc.args
    cleaned = tuple(_scrub_value(arg, secrets) for arg in args)
    if cleaned != args:
        exc.args = cleaned
    names = set(vars(exc)) if hasattr(exc, "__dict__") else set()
    for name in names.union(_TEXT_ATTRIBUTES):
        value = getattr(exc, name, None)
        if isinstance(value, (str, tuple, list)):
            new = _scrub_value(value, secrets)
            if new != value:
                try:
                    setattr(exc, name, new)
                except Exception:
                    pass
