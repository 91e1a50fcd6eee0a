"""Settings: read once at ``init_app``, validated, then frozen.

Every key is looked up in ``app.config`` first, then in the environment under the same name,
then falls back to its default. Resolving everything here keeps the per-request path free of
configuration look-ups, and failing here (with the key's name) keeps a typo from turning into a
silent, empty log.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import catalogue
from .audit import settings as audit_settings

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}

#: Each key, its default and what it is for. docs/configuration.md mirrors this.
DEFAULTS: dict[str, Any] = {
    "SIGOBS_SERVICE_NAME": None,  # falls back to OTEL_SERVICE_NAME, then the app's name
    "SIGOBS_LOG_LEVEL": "info",
    "SIGOBS_LOG_FORMAT": "json",
    "SIGOBS_LOG_FILE": None,  # None: standard output
    "SIGOBS_LOG_FLUSH_INTERVAL": 0.1,  # seconds lines may wait to be written together; 0: at once
    "SIGOBS_SIGNALS": "default",
    "SIGOBS_SIGNAL_LEVELS": "",
    "SIGOBS_EXCLUDED_PATHS": "{static}/*,/favicon.ico,/health,/healthz",
    "SIGOBS_REDACT_KEYS": "",
    "SIGOBS_REQUEST_ID_HEADER": "X-Request-ID",
    "SIGOBS_TRUSTED_PROXIES": 0,
    "SIGOBS_SPAN_SOURCE": "signals",  # "otel": opentelemetry-instrumentation-flask's span
    "SIGOBS_MAX_VALUE_LENGTH": 1024,
    "SIGOBS_CAPTURE_LOGGING": True,
    "SIGOBS_SPAN_EXPORTER": None,  # app.config only: a SpanExporter instance to use instead of OTLP
    "SIGOBS_OBSERVE": "",  # import paths of blinker signals observed as observe() does
    "SIGOBS_AUTH_SIGNALS": "",  # import paths of blinker signals observed as auth events
    "SIGOBS_FAST_PATH": "auto",  # "off": the SDK's and werkzeug's public API even where the start-up check holds
    **audit_settings.DEFAULTS,  # SIGOBS_AUDIT_*: the audit trail's (flask_sigobs/audit/settings.py)
    "SIGOBS_SPAN_EVENTS": True,  # false: events are not added to the span (status, exception, user still are)
    "SIGOBS_LOGS_EXPORTER": None,  # falls back to OTEL_LOGS_EXPORTER, then "none"; or a LogExporter (app.config)
    "SIGOBS_METRICS_EXPORTER": None,  # falls back to OTEL_METRICS_EXPORTER, then "none"; or a MetricExporter
}

SPAN_SOURCES = ("otel", "signals")
FAST_PATHS = ("auto", "off")


class ConfigError(ValueError):
    """Raised by ``init_app`` when a setting is invalid; the message names the key."""


@dataclass(frozen=True)
class Settings:
    service_name: str
    log_level: int
    log_format: str
    log_file: str | None
    log_flush_interval: float
    signals: frozenset[str]
    signal_levels: Mapping[str, int]
    excluded_paths: tuple[str, ...]
    excluded_re: re.Pattern[str] | None
    redact_keys: tuple[str, ...]
    request_id_header: str
    request_id_environ_key: str
    trusted_proxies: int
    span_source: str
    max_value_length: int
    capture_logging: bool
    span_exporter: Any = None
    fast_path: str = "auto"
    audit: Any = None  # an AuditSettings, or None when SIGOBS_AUDIT is off
    sources: Mapping[str, str] = field(default_factory=dict)
    #: ``bridges.Source`` rows of SIGOBS_OBSERVE then SIGOBS_AUTH_SIGNALS, each signal imported
    configured_signals: tuple[Any, ...] = ()
    span_events: bool = True
    #: "otlp", "console", "none", or an exporter instance given in app.config
    logs_exporter: Any = "none"
    metrics_exporter: Any = "none"

    def level_of(self, signal_name: str) -> int:
        return self.signal_levels[signal_name]


def _lookup(app_config: Mapping[str, Any], key: str, environ: Mapping[str, str]) -> tuple[Any, str]:
    if key in app_config and app_config[key] is not None:
        return app_config[key], "app.config"
    if key in environ:
        return environ[key], "environment"
    return DEFAULTS[key], "default"


def _as_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [str(part).strip() for part in value if str(part).strip()]
    raise ConfigError(f"{key} must be a comma-separated string or a list, not {type(value).__name__}")


def _as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{key} must be true or false, not {value!r}")


def _as_int(value: Any, key: str, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be an integer, not {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, not {number}")
    return number


def _as_seconds(value: Any, key: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number of seconds, not {value!r}") from None
    if not 0 <= seconds <= 60:
        raise ConfigError(f"{key} must be between 0 and 60 seconds, not {seconds}")
    return seconds


def _as_level(value: Any, key: str) -> int:
    level = LEVELS.get(str(value).strip().lower())
    if level is None:
        raise ConfigError(f"{key} must be one of {', '.join(LEVELS)}, not {value!r}")
    return level


def parse_signals(value: Any, key: str = "SIGOBS_SIGNALS") -> frozenset[str]:
    """``default``, ``all``, a list of names, or ``+name`` / ``-name`` edits of the default."""
    chosen: set[str] | None = None
    edits: list[str] = []
    for token in _as_list(value, key):
        name = token.lstrip("+-")
        if token in ("default", "all"):
            chosen = set(catalogue.DEFAULT_ON if token == "default" else catalogue.SIGNALS)
            continue
        if name not in catalogue.SIGNALS:
            raise ConfigError(f"{key}: unknown signal {name!r}; known: {', '.join(catalogue.SIGNALS)}")
        if token[0] in "+-":
            edits.append(token)
        else:
            chosen = (chosen or set()) | {name}
    result = set(catalogue.DEFAULT_ON) if chosen is None else chosen
    for token in edits:
        (result.add if token[0] == "+" else result.discard)(token[1:])
    return frozenset(result)


def parse_signal_levels(value: Any, key: str = "SIGOBS_SIGNAL_LEVELS") -> dict[str, int]:
    levels = {name: spec.level for name, spec in catalogue.SIGNALS.items()}
    for token in _as_list(value, key):
        name, sep, level = token.partition("=")
        if not sep or name.strip() not in catalogue.SIGNALS:
            raise ConfigError(f"{key}: expected signal=level pairs, got {token!r}")
        levels[name.strip()] = _as_level(level, key)
    return levels


def _exporter_kind(values: dict[str, Any], sources: dict[str, str], key: str, standard: str,
                   environ: Mapping[str, str], method: str) -> Any:
    """``SIGOBS_{LOGS,METRICS}_EXPORTER``, else the standard variable, else off. Unlike the SDK's own
    auto-configuration (whose default is ``otlp``), log records and metrics are sent only when asked."""
    value = values[key]
    if value is None and environ.get(standard):
        value, sources[key] = environ[standard], standard
    if value is None:
        return "none"
    if not isinstance(value, str):
        if not hasattr(value, method):
            raise ConfigError(f"{key} must be 'otlp', 'console', 'none' or an exporter instance (app.config)")
        return value
    kinds = [part.strip().lower() for part in value.split(",") if part.strip()] or ["none"]
    for kind in kinds:
        if kind not in ("otlp", "console", "none"):
            raise ConfigError(f"{key}: flask-sigobs sets up 'otlp', 'console' or 'none', not {kind!r}")
    return "otlp" if "otlp" in kinds else "console" if "console" in kinds else "none"


def compile_excluded(patterns: list[str]) -> re.Pattern[str] | None:
    """Glob patterns over the URL path, joined into one regular expression."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def load(app: Any, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every ``SIGOBS_*`` key for ``app``."""
    environ = os.environ if environ is None else environ
    config = app.config
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in DEFAULTS:
        values[key], sources[key] = _lookup(config, key, environ)

    service_name = values["SIGOBS_SERVICE_NAME"]
    if service_name is None:
        if environ.get("OTEL_SERVICE_NAME"):
            service_name, sources["SIGOBS_SERVICE_NAME"] = environ["OTEL_SERVICE_NAME"], "OTEL_SERVICE_NAME"
        else:
            service_name = app.name
    if not isinstance(service_name, str) or not service_name.strip():
        raise ConfigError(f"SIGOBS_SERVICE_NAME must be a non-empty string, not {service_name!r}")

    log_format = str(values["SIGOBS_LOG_FORMAT"]).strip().lower()
    if log_format not in ("json", "console"):
        raise ConfigError(f"SIGOBS_LOG_FORMAT must be 'json' or 'console', not {values['SIGOBS_LOG_FORMAT']!r}")

    log_file = values["SIGOBS_LOG_FILE"]
    if log_file in ("", "-", "stdout"):
        log_file = None
    if log_file is not None:
        log_file = os.fspath(log_file)
        parent = os.path.dirname(os.path.abspath(log_file))
        if not os.path.isdir(parent):
            raise ConfigError(f"SIGOBS_LOG_FILE: directory {parent!r} does not exist")

    static = (app.static_url_path or "").rstrip("/") if getattr(app, "has_static_folder", False) else ""
    excluded = []
    for pattern in _as_list(values["SIGOBS_EXCLUDED_PATHS"], "SIGOBS_EXCLUDED_PATHS"):
        if "{static}" in pattern:
            if not static:
                continue
            pattern = pattern.replace("{static}", static)
        if not pattern.startswith(("/", "*")):
            raise ConfigError(f"SIGOBS_EXCLUDED_PATHS: {pattern!r} must start with '/' (a URL path glob)")
        excluded.append(pattern)

    header = str(values["SIGOBS_REQUEST_ID_HEADER"]).strip()
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", header):
        raise ConfigError(f"SIGOBS_REQUEST_ID_HEADER must be an HTTP header name, not {header!r}")

    span_source = str(values["SIGOBS_SPAN_SOURCE"]).strip().lower()
    if span_source not in SPAN_SOURCES:
        raise ConfigError(f"SIGOBS_SPAN_SOURCE must be one of {', '.join(SPAN_SOURCES)}, not {span_source!r}")

    fast_path = str(values["SIGOBS_FAST_PATH"]).strip().lower()
    if fast_path not in FAST_PATHS:
        raise ConfigError(f"SIGOBS_FAST_PATH must be one of {', '.join(FAST_PATHS)}, not {fast_path!r}")

    exporter = values["SIGOBS_SPAN_EXPORTER"]
    if exporter is not None and not hasattr(exporter, "export"):
        raise ConfigError("SIGOBS_SPAN_EXPORTER must be a SpanExporter instance (app.config only)")

    from .bridges import configured  # here: it imports this module (ConfigError)

    observed = configured.parse(_as_list(values["SIGOBS_OBSERVE"], "SIGOBS_OBSERVE"), "SIGOBS_OBSERVE", False)
    auth_signals = configured.parse(_as_list(values["SIGOBS_AUTH_SIGNALS"], "SIGOBS_AUTH_SIGNALS"),
                                    "SIGOBS_AUTH_SIGNALS", True)
    # A signal named under both keys is an auth signal: the later key wins.
    by_signal = {source.signal: source for source in (*observed, *auth_signals)}

    return Settings(
        service_name=service_name.strip(),
        log_level=_as_level(values["SIGOBS_LOG_LEVEL"], "SIGOBS_LOG_LEVEL"),
        log_format=log_format,
        log_file=log_file,
        log_flush_interval=_as_seconds(values["SIGOBS_LOG_FLUSH_INTERVAL"], "SIGOBS_LOG_FLUSH_INTERVAL"),
        signals=parse_signals(values["SIGOBS_SIGNALS"]),
        signal_levels=parse_signal_levels(values["SIGOBS_SIGNAL_LEVELS"]),
        excluded_paths=tuple(excluded),
        excluded_re=compile_excluded(excluded),
        redact_keys=tuple(k.lower() for k in _as_list(values["SIGOBS_REDACT_KEYS"], "SIGOBS_REDACT_KEYS")),
        request_id_header=header,
        request_id_environ_key="HTTP_" + header.upper().replace("-", "_"),
        trusted_proxies=_as_int(values["SIGOBS_TRUSTED_PROXIES"], "SIGOBS_TRUSTED_PROXIES", 0),
        span_source=span_source,
        max_value_length=_as_int(values["SIGOBS_MAX_VALUE_LENGTH"], "SIGOBS_MAX_VALUE_LENGTH", 16),
        capture_logging=_as_bool(values["SIGOBS_CAPTURE_LOGGING"], "SIGOBS_CAPTURE_LOGGING"),
        span_exporter=exporter,
        fast_path=fast_path,
        audit=audit_settings.load(values, app, ConfigError, _as_bool, _as_int),
        sources=sources,
        configured_signals=tuple(by_signal.values()),
        span_events=_as_bool(values["SIGOBS_SPAN_EVENTS"], "SIGOBS_SPAN_EVENTS"),
        logs_exporter=_exporter_kind(values, sources, "SIGOBS_LOGS_EXPORTER", "OTEL_LOGS_EXPORTER", environ, "export"),
        metrics_exporter=_exporter_kind(values, sources, "SIGOBS_METRICS_EXPORTER", "OTEL_METRICS_EXPORTER",
                                        environ, "export"),
    )
