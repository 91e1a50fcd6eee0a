"""What an endpoint said, as the report can print it, and the words both OTLP transports share.

An endpoint's text and an exporter's error can quote anything a server sent; the report goes to
a terminal, so it is bounded, put on one line, and its control characters are shown as escapes.
"""

from __future__ import annotations

import os
from typing import Any

from ..tail.terminal import escape
from .report import Delivery


def _their_words(text: str) -> str:
    """Text an endpoint sent, bounded and with its control characters shown as escapes: the report
    goes to a terminal, where they would be obeyed."""
    return escape(text[:300])


def _credentials_words() -> tuple[str, str]:
    """What an endpoint that says "unauthenticated" or "forbidden" means, and its fix, whether the
    exporter sent headers (``OTEL_EXPORTER_OTLP_HEADERS``) or not."""
    variable = next((name for name in ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
                     if os.environ.get(name)), None)
    if variable is None:
        return ("the endpoint wants credentials",
                "set OTEL_EXPORTER_OTLP_HEADERS (for example authorization=Bearer ...)")
    return (f"the endpoint refused the credentials of {variable}",
            f"check the values in {variable} (URL-encoded: a space is %20, as in authorization=Basic%20...)")


def _rejected(response: Any, endpoint: str, protocol: str, **extra: Any) -> Delivery | None:
    """A successful export whose answer is a partial success that refused the span: OTLP's way for a
    backend to say why it dropped spans. The exporters pass it over in silence."""
    partial = getattr(response, "partial_success", None)
    if partial is None or not partial.rejected_spans:
        return None
    return Delivery("rejected", f"the collector took the request but rejected the span: "
                                f"{_their_words(partial.error_message)}",
                    endpoint, protocol, 0.0, fix="see the collector's log for why it rejects spans", **extra)


def _short(text: str, limit: int = 240) -> str:
    """An error's text on one line, bounded, its control characters escaped: an exporter's error
    can quote what the server sent, and the report goes to a terminal."""
    text = " ".join(text.split())
    return escape(text if len(text) <= limit else text[:limit] + "...")
