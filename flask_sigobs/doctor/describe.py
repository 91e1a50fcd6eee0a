"""What the app is set up with, as the report says it: where each setting came from, the
``OTEL_*`` variables (their secrets replaced), the signals observed, who made the request span.

Only reading and describing here; the checks that judge what is read are elsewhere.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import Any


def _where() -> str:
    from .. import autoattach

    if os.environ.get("SIGOBS_RUN"):
        return "this process was started by `sigobs run`"
    if autoattach.installed():
        return "this process was started by opentelemetry-instrument"
    return "this process was started without a launcher"


def _launcher_words() -> str:
    return (f"flask-sigobs attaches on the first request when the app is started with `sigobs run -- COMMAND` "
            f"or `opentelemetry-instrument COMMAND` ({_where()})")


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _resource_service(provider: Any) -> str | None:
    resource = getattr(provider, "resource", None)
    return None if resource is None else resource.attributes.get("service.name")


def _request_span_words(runtime: Any) -> str:
    if runtime.span_source is not None:
        return "made by flask-sigobs from the signals (SIGOBS_SPAN_SOURCE=signals)"
    if runtime.instrumented_by == "app":
        return "made by opentelemetry-instrumentation-flask, set up by the app or opentelemetry-instrument"
    return "made by opentelemetry-instrumentation-flask, set up by flask-sigobs"


_SHOWN_AS_TYPE = {"SIGOBS_SPAN_EXPORTER"}


def _configuration(app: Any, settings: Any) -> dict[str, dict[str, Any]]:
    from .. import config

    out = {}
    for key in config.DEFAULTS:
        source = settings.sources.get(key, "default")
        if source == "app.config":
            value = app.config.get(key)
        elif source == "environment":
            value = os.environ.get(key)
        elif source == "OTEL_SERVICE_NAME":
            value, source = os.environ.get("OTEL_SERVICE_NAME"), "environment (OTEL_SERVICE_NAME)"
        else:
            value = config.DEFAULTS[key]
        if key == "SIGOBS_SERVICE_NAME":
            if value is None:
                source = "default (the app's name)"
            value = settings.service_name
        if key in _SHOWN_AS_TYPE and value is not None:
            value = _type_name(value)
        if key == "SIGOBS_LOG_FILE" and value in (None, "", "-", "stdout"):
            value = None
        out[key] = {"value": value if isinstance(value, (str, int, float, bool, type(None))) else str(value),
                    "source": source}
    return out


_SECRET_VARIABLES = re.compile(r"HEADERS|KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.I)


def _otel_variables() -> dict[str, str]:
    """The ``OTEL_*`` variables set, values of headers and the like replaced (they hold API keys)."""
    out = {}
    for key in sorted(os.environ):
        if key.startswith("OTEL_"):
            value = os.environ[key]
            if _SECRET_VARIABLES.search(key) and "FILE" not in key:
                value = ",".join(f"{part.split('=', 1)[0]}=[REDACTED]" for part in value.split(",") if part)
            out[key] = _without_userinfo(value)
    return out


def _without_userinfo(url: str) -> str:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urllib.parse.urlunsplit((parts.scheme, "[REDACTED]@" + netloc, parts.path, parts.query, parts.fragment))
    return url


def _signals(settings: Any, sigobs: Any) -> list[str]:
    from .. import auth, catalogue
    from ..bridges import flask_login, flask_security

    names = [f"flask.{name}" for name in catalogue.SIGNALS if name in settings.signals]
    names += [f"auth.{signal.name}" for signal in auth.LEVELS]
    names += [source.event for source in flask_login.signals() + flask_security.signals()]
    names += [source.event for source in getattr(settings, "configured_signals", ())]
    for signal, (event, _, _, _) in getattr(sigobs, "_observed", {}).items():
        names.append(event or getattr(signal, "name", "?"))
    return names


def _sdk_disabled() -> bool:
    return str(os.environ.get("OTEL_SDK_DISABLED", "")).strip().lower() == "true"
