"""The known ways to see nothing: each a check that names the set-up and its fix.

The app instrumented twice, every route excluded, a log level that hides the access lines, a log
file that cannot be written, an app's structlog set-up that filters our lines out, and
exporters made at import that do not survive gunicorn's fork.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from .describe import _type_name
from .exporters import ExporterInfo
from .report import OK, PROBLEM, WARNING, Report


def _check_instrumented_once(report: Report, app: Any, runtime: Any) -> None:
    makers = _span_makers(app, runtime)
    report.opentelemetry["server_span_makers"] = makers
    if len(makers) > 1:
        report.add("instrumented once", PROBLEM,
                   f"the app is instrumented {len(makers)} times ({', '.join(makers)}): each request makes "
                   f"{len(makers)} spans, one inside the other, and the events land on one of them only (the "
                   f"trace's root span, the one a search lists, has none)",
                   "keep one: drop the OpenTelemetryMiddleware (or the second instrument_app call), the Flask "
                   "instrumentation already makes the server span")
    elif makers:
        report.add("instrumented once", OK, f"one span per request ({makers[0]})")


def _span_makers(app: Any, runtime: Any) -> list[str]:
    makers = []
    for func in app.before_request_funcs.get(None, []):
        if getattr(func, "__module__", "") == "opentelemetry.instrumentation.flask":
            makers.append("opentelemetry-instrumentation-flask")
    if runtime.span_source is not None:
        makers.append("flask-sigobs signals span source")
    node, seen = app.wsgi_app, set()
    for _ in range(32):
        if node is None or id(node) in seen:
            break
        seen.add(id(node))
        kind = type(node)
        if kind.__name__ == "OpenTelemetryMiddleware" and kind.__module__.startswith("opentelemetry.instrumentation.wsgi"):
            makers.append("opentelemetry-instrumentation-wsgi OpenTelemetryMiddleware")
        node = _inner_wsgi(node)
    return makers


def _inner_wsgi(node: Any) -> Any:
    if getattr(node, "__self__", None) is not None:  # a bound method: the Flask app's own (the end)
        return None
    for attribute in ("wsgi", "app", "wsgi_app", "application", "__wrapped__"):
        inner = getattr(node, attribute, None)
        if inner is not None and callable(inner) and inner is not node:
            return inner
    code = getattr(node, "__code__", None)  # a wrapping function: the app it closes over
    cells = dict(zip(code.co_freevars, node.__closure__ or ())) if code is not None else {}
    for name in ("wsgi_app", "app", "wsgi", "application"):
        if name in cells:
            try:
                value = cells[name].cell_contents
            except ValueError:
                continue
            if callable(value):
                return value
    return None


_CONVERTER = re.compile(r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")
_SAMPLES = {"int": "1", "float": "1.0", "path": "a/b", "uuid": "00000000-0000-0000-0000-000000000000"}


def _sample_path(rule: str) -> str:
    return _CONVERTER.sub(lambda m: _SAMPLES.get(m.group("converter") or "string", "x"), rule)


def _check_excluded_paths(report: Report, app: Any, runtime: Any) -> None:
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"]
    if not rules:
        report.add("excluded paths", WARNING, "the app has no route yet (routes added later, on the first request?)")
        return
    paths = [_sample_path(rule.rule) for rule in rules]
    ours = [path for path in paths if runtime.excluded(path)]
    if len(ours) == len(paths):
        report.add("excluded paths", PROBLEM,
                   f"SIGOBS_EXCLUDED_PATHS ({','.join(runtime.settings.excluded_paths)}) covers every route of the "
                   f"app ({len(paths)}): no request writes a line or gets events",
                   "narrow SIGOBS_EXCLUDED_PATHS to the paths you mean (globs over the URL path, such as /health)")
    else:
        report.add("excluded paths", OK, f"{len(paths) - len(ours)} of {len(paths)} routes are observed"
                   + (f" ({len(ours)} excluded by SIGOBS_EXCLUDED_PATHS)" if ours else ""))
    if runtime.instrumented_by in ("app", "flask-sigobs"):  # the Flask instrumentation reads its own variables
        try:
            from opentelemetry.util.http import get_excluded_urls

            otel = get_excluded_urls("FLASK")
        except Exception:
            otel = None
        if otel is not None:
            dark = [path for path in paths if otel.url_disabled("http://localhost" + path)]
            if len(dark) == len(paths):
                report.add("excluded paths", PROBLEM,
                           "OTEL_PYTHON_FLASK_EXCLUDED_URLS (or OTEL_PYTHON_EXCLUDED_URLS) covers every route: "
                           "no request gets a span, so no span event is recorded",
                           "narrow OTEL_PYTHON_FLASK_EXCLUDED_URLS")


def _check_log_level(report: Report, settings: Any) -> None:
    from ..catalogue import LEVEL_NAMES

    level = settings.log_level
    access = settings.signal_levels.get("request_finished", logging.INFO)
    name = LEVEL_NAMES.get(level, str(level))
    if "request_finished" in settings.signals and access < level:
        report.add("log level", PROBLEM,
                   f"SIGOBS_LOG_LEVEL={name} hides the access lines (flask.request_finished is "
                   f"{LEVEL_NAMES.get(access, access)}): only {name} and above are written, so a healthy request "
                   f"writes no line (span events are still recorded)",
                   "set SIGOBS_LOG_LEVEL=info (or raise request_finished with SIGOBS_SIGNAL_LEVELS)")
    else:
        report.add("log level", OK, f"SIGOBS_LOG_LEVEL={name} writes the access lines")


def _check_log_destination(report: Report, runtime: Any) -> None:
    settings = runtime.settings
    if runtime.structlog_owner != "flask-sigobs":
        report.logs = {"destination": "the app's own structlog set-up", "format": "the app's"}
        return
    path = settings.log_file
    report.logs = {"destination": path or "standard output", "format": settings.log_format}
    if path is None:
        report.add("log destination", OK, f"{settings.log_format} lines go to standard output (gunicorn passes "
                                          "its workers' output through; under a process manager, look in its logs)")
    elif os.path.exists(path) and not os.access(path, os.W_OK):
        report.add("log destination", PROBLEM, f"SIGOBS_LOG_FILE={path} is not writable: no line can be written",
                   "fix the file's permissions or choose another SIGOBS_LOG_FILE")
    else:
        report.add("log destination", OK, f"{settings.log_format} lines are appended to {path}")


def _check_structlog(report: Report, runtime: Any) -> None:
    """The app configured structlog: run a probe event through its processors (nothing is written)."""
    if runtime.structlog_owner == "flask-sigobs":
        report.add("structlog", OK, "structlog is configured by flask-sigobs: its lines go to SIGOBS_LOG_FILE "
                                    "(or standard output)")
        return
    import structlog

    cfg = structlog.get_config()
    words = _structlog_drops(cfg)
    report.structlog["probe"] = words or "passes"
    if words:
        report.add("structlog", PROBLEM,
                   f"structlog is configured by the app so that flask-sigobs's lines are filtered out: {words}",
                   "let info events of the 'flask_sigobs' logger through the app's structlog configuration "
                   "(its level filter and its processors)")
    else:
        report.add("structlog", OK, "structlog is configured by the app: flask-sigobs's lines go through its "
                                    "pipeline, to its destination (SIGOBS_LOG_FILE and SIGOBS_LOG_FORMAT do not apply)")


def _structlog_drops(cfg: dict[str, Any]) -> str | None:
    import structlog

    try:
        logger = cfg["logger_factory"]("flask_sigobs")
    except Exception as exc:
        return f"its logger factory fails: {exc!r}"
    wrapper = cfg.get("wrapper_class")
    try:
        bound = wrapper(logger, processors=cfg["processors"], context=cfg["context_class"]())
    except Exception:
        bound = None
    enabled = getattr(bound, "is_enabled_for", None)
    if enabled is not None:
        try:
            if not enabled(logging.INFO):
                return f"its wrapper class {getattr(wrapper, '__name__', wrapper)} drops info events"
        except Exception:
            pass
    info = getattr(type(bound), "info", None) if bound is not None else None
    if info is not None and getattr(info, "__name__", "") == "_nop":
        return f"its wrapper class {getattr(wrapper, '__name__', wrapper)} drops info events"
    event = {"event": "flask.request_finished", "http.response.status_code": 200, "sigobs.doctor": True}
    for processor in cfg["processors"]:
        try:
            event = processor(logger, "info", event)
        except structlog.DropEvent:
            name = getattr(processor, "__name__", None) or type(processor).__name__
            return f"its processor {name} drops them"
        except Exception as exc:
            name = getattr(processor, "__name__", None) or type(processor).__name__
            return f"its processor {name} fails on them ({exc!r})"
    return None


def _check_fork(report: Report, runtime: Any, before: dict[str, Any], exporters: list[ExporterInfo]) -> None:
    preload = "--preload" in os.environ.get("GUNICORN_CMD_ARGS", "")
    at_import = bool(before.get("provider_at_import")) or (runtime.otel_owner == "flask-sigobs"
                                                            and before.get("attached_at_import"))
    if not at_import:
        report.add("fork", OK, "OpenTelemetry is set up on the first request, in the process that serves it: "
                               "under gunicorn (--preload too) each worker makes its own exporter after the fork")
        return
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    unsafe = [info for info in exporters
              if not isinstance(info.processor, (BatchSpanProcessor, SimpleSpanProcessor))
              and not hasattr(info.processor, "_at_fork_reinit")]
    grpc = [info for info in exporters if info.kind == "otlp-grpc"]
    who = "the app" if runtime.otel_owner != "flask-sigobs" else "flask-sigobs (SigObs(app) at import)"
    if unsafe:
        report.add("fork", PROBLEM if preload else WARNING,
                   f"a span processor ({_type_name(unsafe[0].processor)}) is created at import by {who}, and does "
                   "not restart its export thread after a fork: under gunicorn --preload the workers' spans stay "
                   "queued, never exported",
                   "create the TracerProvider in gunicorn's post_fork hook, or do not use --preload")
    elif grpc:
        report.add("fork", PROBLEM if preload and not os.environ.get("GRPC_ENABLE_FORK_SUPPORT") else WARNING,
                   f"a gRPC exporter is created at import by {who}: with gunicorn --preload its channel is opened "
                   "before the fork and may not work in the workers",
                   "use OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf, or set GRPC_ENABLE_FORK_SUPPORT=1, or do not "
                   "use --preload")
    else:
        report.add("fork", OK, f"the batch span processor is created at import by {who}; under gunicorn "
                               "--preload it restarts its export thread in each worker after the fork")
