"""The audit trail as one of the runtime's outputs: built at ``init_app``, fed auth events."""

from __future__ import annotations

import logging
import weakref
from typing import Any

from ..errors import report_once

ALARM_LEVEL = logging.WARNING


def audit_output(app: Any, settings: Any, runtime: Any) -> Any:
    """A ``Trail`` for ``app``, or None when ``SIGOBS_AUDIT`` is off (then it costs nothing)."""
    if settings.audit is None:
        return None
    from .trail import Trail

    reference = weakref.ref(runtime)  # the trail's thread must not keep the runtime alive

    def alarm(name: str, attributes: dict[str, Any], trace_id: str | None, span_id: str | None) -> None:
        found = reference()
        if found is not None:
            raise_alarm(found, name, attributes, trace_id, span_id)

    try:
        trail = Trail(settings.audit, settings.service_name,
                      app.config.get("SESSION_COOKIE_NAME") or "session", alarm)
    except Exception as exc:  # a journal directory that cannot be made, say: the app runs on
        report_once(("audit", "init", type(exc)), "flask-sigobs audit is off for %s: %r", app.name, exc)
        return None
    trail.trusted_proxies = settings.trusted_proxies
    return trail


def raise_alarm(runtime: Any, name: str, attributes: dict[str, Any], trace_id: str | None,
                span_id: str | None) -> None:
    """``auth.login_fail_max`` from the writer thread: a warning line and a span event, on a short
    span of its own in the trace of the failure that crossed the threshold (that request's span has
    ended by now), so Jaeger shows the alarm inside the attack's own trace."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    parent = None
    if trace_id and span_id:
        parent = trace.set_span_in_context(NonRecordingSpan(SpanContext(
            int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))))
    tracer = runtime.tracer_provider.get_tracer("flask_sigobs.audit")
    with tracer.start_as_current_span(name, context=parent, kind=trace.SpanKind.INTERNAL,
                                      attributes={k: v for k, v in attributes.items() if k == "enduser.id"}):
        runtime.emit(name, ALARM_LEVEL, dict(attributes), None)
