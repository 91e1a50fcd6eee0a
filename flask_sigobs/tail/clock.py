"""Log timestamps as the reader's wall-clock time, converted once per second, not once per line.

Converting through ``datetime.fromisoformat`` and ``astimezone`` on every line costs about a
quarter of the whole rendering budget. Lines of the same second share everything but the
fraction, so the conversion is cached by the ``YYYY-MM-DDTHH:MM:SS`` prefix and the
milliseconds are copied from the string as they are.
"""

from __future__ import annotations

from datetime import datetime, timezone

from .terminal import escape


def _fraction(value: str) -> str:
    """Milliseconds of a timestamp whose fraction is not three digits or more (``...28.5Z``)."""
    if value[19:20] != ".":
        return ".000"
    digits = ""
    for char in value[20:23]:
        if not char.isdigit():
            break
        digits += char
    return "." + digits.ljust(3, "0")


class Clock:
    """A timestamp as ``HH:MM:SS.mmm`` in local time or UTC; ``date`` is the date of the last
    one converted (so a caller can print a divider when the day changes)."""

    def __init__(self, utc: bool = False) -> None:
        self.utc = utc
        self.date = ""
        self._last_key: str | None = None
        self._last_hms = ""
        self._cache: dict[str, tuple[str, str]] = {}

    def time(self, value: object) -> str:
        if type(value) is str and len(value) == 27 and value[26] == "Z":  # ours: ...T20:07:28.597122Z
            key = value[:19]
            frac = value[19:23]
            if key == self._last_key and frac[1:].isdigit():
                return self._last_hms + frac
        return self._time(value)

    def split(self, value: object) -> tuple[str, str]:
        """(date, time) of one timestamp."""
        hms = self.time(value)
        return self.date, hms

    def _time(self, value: object) -> str:
        if type(value) is str and len(value) >= 20 and value[10] in "Tt " and value[-1] in "Zz":
            key = value[:19]
            if key != self._last_key:
                cached = self._cache.get(key)
                if cached is None:
                    cached = self._convert_utc(key)
                    if len(self._cache) > 4096:
                        self._cache.clear()
                    self._cache[key] = cached
                self.date, self._last_hms = cached
                self._last_key = key
            frac = value[19:23]
            if len(frac) != 4 or frac[0] != "." or not frac[1:].isdigit():
                frac = _fraction(value)
            return self._last_hms + frac
        self._last_key = None
        self.date, hms = self._slow(value)
        return hms

    def _convert_utc(self, key: str) -> tuple[str, str]:
        if self.utc:
            return key[:10], key[11:19]
        try:
            moment = datetime.fromisoformat(key.replace(" ", "T").replace("t", "T")).replace(
                tzinfo=timezone.utc).astimezone()
        except ValueError:
            return "", escape(key)
        return moment.strftime("%Y-%m-%d"), moment.strftime("%H:%M:%S")

    def _slow(self, value: object) -> tuple[str, str]:
        """Timestamps in other shapes: with an offset, without a zone, or seconds since epoch."""
        try:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                moment = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, timezone.utc)
            elif isinstance(value, str):
                text = value.strip()
                moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=timezone.utc)
            else:
                return "", ""
        except (ValueError, OverflowError, OSError, IndexError):
            return "", escape(str(value))[:23]
        moment = moment.astimezone(timezone.utc) if self.utc else moment.astimezone()
        return moment.strftime("%Y-%m-%d"), moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
