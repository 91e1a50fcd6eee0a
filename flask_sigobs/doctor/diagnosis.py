""":func:`diagnose`: every check of the doctor, in the order the report lists them.

It attaches flask-sigobs as a launcher would when the app does not, reads the runtime that
attaching made, and hands it to each check: the SDK and the fast path here, the exporters and
the sampler (``exporters``), one test span per OTLP exporter (``testspan``), log records and
metrics (``outputs.probe``), then the known ways to see nothing (``pitfalls``).
"""

from __future__ import annotations

import os
from typing import Any

from .describe import (_configuration, _launcher_words, _otel_variables, _request_span_words, _resource_service,
                       _sdk_disabled, _signals, _type_name, _where)
from .exporters import _check_exporters, _check_sampler, _exporters
from .pitfalls import (_check_excluded_paths, _check_fork, _check_instrumented_once, _check_log_destination,
                       _check_log_level, _check_structlog)
from .report import OK, PROBLEM, WARNING, Report
from .testspan import send_test_span_to


def diagnose(app: Any, import_path: str, *, timeout: float | None = None, send_test_span: bool = True,
             before: dict[str, Any] | None = None) -> Report:
    """Everything the doctor says about ``app`` (already imported; ``before``: the state before)."""
    from .. import autoattach

    before = before or {}
    report = Report(app=app.name, import_path=import_path)
    sigobs = app.extensions.get("sigobs")
    if sigobs is not None:
        if sigobs is autoattach._shared:
            report.attached_by = "flask-sigobs's auto-attach (sigobs run or opentelemetry-instrument)"
        else:
            report.attached_by = "the app's own code (SigObs(app) or init_app)"
        report.add("attach", OK, f"flask-sigobs is attached by {report.attached_by}")
    else:
        launcher = _launcher_words()
        if autoattach.installed() or os.environ.get("SIGOBS_RUN"):
            report.attached_by = f"the auto-attach, on the first request (the app does not call SigObs(app); {_where()})"
        else:
            report.attached_by = ("nothing yet: the app does not call SigObs(app); start it with `sigobs run -- COMMAND` "
                                  "or `opentelemetry-instrument COMMAND` (the doctor attached it here as they would)")
        if autoattach.disabled():
            report.add("attach", PROBLEM,
                       "the app does not attach flask-sigobs itself, and OTEL_PYTHON_DISABLED_INSTRUMENTATIONS "
                       f"({os.environ.get('OTEL_PYTHON_DISABLED_INSTRUMENTATIONS')}) switches the auto-attach off: "
                       "nothing will attach it",
                       "remove flask_sigobs from OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, or call SigObs(app)")
        else:
            report.add("attach", OK if autoattach.installed() else WARNING,
                       f"the app does not call SigObs(app) itself; {launcher}",
                       None if autoattach.installed() else
                       "start it with `sigobs run -- COMMAND` or `opentelemetry-instrument COMMAND`")
        if not autoattach.attach(app):  # what the launcher would do on the first request
            report.add("configuration", PROBLEM,
                       f"flask-sigobs cannot attach: {autoattach.failure(app)}", "fix the value named above")
            return report
        sigobs = app.extensions["sigobs"]
    try:
        runtime = sigobs.runtime(app)
    except KeyError:
        report.add("attach", PROBLEM, "app.extensions['sigobs'] does not know this app")
        return report

    settings = runtime.settings
    report.configuration = _configuration(app, settings)
    report.otel_variables = _otel_variables()
    report.signals = _signals(settings, sigobs)
    report.opentelemetry = {
        "set_up_by": "flask-sigobs" if runtime.otel_owner == "flask-sigobs" else "the app",
        "tracer_provider": _type_name(runtime.tracer_provider),
        "service_name": _resource_service(runtime.tracer_provider),
        "request_span": _request_span_words(runtime),
        "created_at_import": bool(before.get("provider_at_import")),
    }
    report.structlog = {"configured_by": "flask-sigobs" if runtime.structlog_owner == "flask-sigobs" else "the app"}

    _check_sdk(report, runtime)
    _check_fast_path(report, runtime)
    exporters = _exporters(runtime.tracer_provider)
    report.exporters = [e.describe() for e in exporters]
    _check_exporters(report, runtime, exporters)
    _check_sampler(report, runtime.tracer_provider)
    if send_test_span and not _sdk_disabled():
        for exporter in exporters:
            if exporter.kind in ("otlp-http", "otlp-grpc"):
                delivery = send_test_span_to(exporter, runtime.tracer_provider, timeout)
                report.test_spans.append(delivery)
                report.add("test span", OK if delivery.accepted else PROBLEM,
                           f"test span to {delivery.endpoint} ({delivery.protocol}): {delivery.words}", delivery.fix)
    from ..outputs import probe  # log records and metrics (outputs/): on, off, a test record each

    probe.check(report, runtime, timeout, send_test_span and not _sdk_disabled(), OK, WARNING, PROBLEM)
    _check_instrumented_once(report, app, runtime)
    _check_excluded_paths(report, app, runtime)
    _check_log_level(report, settings)
    _check_log_destination(report, runtime)
    _check_structlog(report, runtime)
    _check_fork(report, runtime, before, exporters)
    return report


def _check_fast_path(report: Report, runtime: Any) -> None:
    """Which way spans and response headers are made: the short way, or the public API and why."""
    from .. import selfcheck

    if runtime.settings.fast_path == "off":
        report.add("fast path", OK, "spans and response headers through the public API (SIGOBS_FAST_PATH=off)")
        return
    for part, verdict in (("spans", selfcheck.spans()), ("response headers", selfcheck.headers())):
        if verdict.fast:
            report.add("fast path", OK, f"{part}: the short way ({verdict.why})")
        else:
            report.add("fast path", WARNING, f"{part}: the public API, slower ({verdict.why})",
                       "a newer flask-sigobs may know this release; everything works as it is")


def _check_sdk(report: Report, runtime: Any) -> None:
    if _sdk_disabled():
        report.add("sdk", PROBLEM, "OTEL_SDK_DISABLED=true: the OpenTelemetry SDK records no span",
                   "unset OTEL_SDK_DISABLED")
    if not hasattr(runtime.tracer_provider, "add_span_processor"):
        report.add("sdk", PROBLEM,
                   f"the TracerProvider ({_type_name(runtime.tracer_provider)}) is not the SDK's: no span is recorded")
