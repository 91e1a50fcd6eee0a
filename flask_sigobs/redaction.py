"""Redaction and bounding: what makes any value safe to write before it is written.

Every attribute of every event passes through :meth:`Redactor.clean` before either output sees
it, so the log sink and the trace sink never have to think about secrets, cycles, objects whose
``__str__`` raises, or a 10 MB string: what reaches them is small, JSON-safe and redacted.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping
from urllib.parse import unquote_plus

REDACTED = "[REDACTED]"

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

    def is_sensitive(self, key: str) -> bool:
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._pattern.search(key.lower().replace("-", "_")) is not None
            if len(self._verdicts) < 4096:  # bounded: keys can come from hostile input
                self._verdicts[key] = verdict
        return verdict

    def text(self, value: str) -> str:
        """Bound a string, saying how much was cut."""
        if len(value) <= self.max_length:
            return value
        return f"{value[:self.max_length]}...[{len(value) - self.max_length} more chars]"

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
