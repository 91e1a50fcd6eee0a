"""The report in words, for a person: the set-up first, then each check with its fix."""

from __future__ import annotations

from .report import OK, PROBLEM, WARNING, Report, verdict


_MARKS = {OK: "ok     ", WARNING: "warning", PROBLEM: "PROBLEM"}


def render(report: Report) -> str:
    """The report in words, for a person."""
    lines = [f"flask-sigobs doctor: app {report.app!r} ({report.import_path})", ""]
    lines.append(f"Attached by:     {report.attached_by}")
    if report.configuration:
        lines += ["", "Configuration (value, and where it comes from):"]
        width = max(len(key) for key in report.configuration)
        for key, item in report.configuration.items():
            value = "(unset)" if item["value"] is None else str(item["value"])
            lines.append(f"  {key:<{width}}  {value:<40}  {item['source']}")
    if report.otel_variables:
        lines += ["", "OpenTelemetry variables set:"]
        lines += [f"  {key}={value}" for key, value in report.otel_variables.items()]
    if report.signals:
        lines += ["", f"Signals observed: {', '.join(report.signals)}"]
    if report.opentelemetry:
        otel = report.opentelemetry
        lines += ["", f"OpenTelemetry:   set up by {otel['set_up_by']} ({otel['tracer_provider']}, "
                      f"service.name={otel.get('service_name')})",
                  f"Request span:    {otel['request_span']}"]
    if report.structlog:
        lines.append(f"structlog:       configured by {report.structlog['configured_by']}")
    if report.logs:
        lines.append(f"Log lines:       {report.logs['format']} to {report.logs['destination']}")
    if report.exporters:
        for exporter in report.exporters:
            lines.append(f"Exporter:        {exporter['class'].rsplit('.', 1)[-1]} ({exporter['kind']})"
                         + (f", endpoint {exporter['endpoint']}, protocol {exporter['protocol']}"
                            if exporter["endpoint"] else ""))
    elif report.opentelemetry:
        lines.append("Exporter:        none")
    if report.sampler:
        share = report.sampler.get("kept_share_of_new_traces")
        lines.append(f"Sampler:         {report.sampler['description']}"
                     + (f" (keeps {share:.0%} of new traces)" if share is not None else ""))
    for delivery in report.test_spans:
        lines.append(f"Test span:       {delivery.words}")
    lines += ["", "Checks:"]
    for finding in report.findings:
        lines.append(f"  {_MARKS[finding.status]}  {finding.check}: {finding.words}")
        if finding.fix and finding.status != OK:
            lines.append(f"             fix: {finding.fix}")
    lines += ["", f"Result: {verdict(report)}."]
    return "\n".join(lines)
