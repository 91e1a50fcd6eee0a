"""``sigobs doctor``: what flask-sigobs will do for an app, and whether its output can arrive.

The doctor loads the app (as ``flask --app`` does), attaches flask-sigobs to it if its code does
not (as ``sigobs run`` and ``opentelemetry-instrument`` would, on the first request), and then:

- reports the effective configuration, each value with where it came from, the signals observed,
  who set up OpenTelemetry and structlog, the exporter, endpoint, protocol and sampler;
- sends one real test span, through the exporter's own client (its endpoint, headers, TLS
  settings), once, and says what happened in words: accepted, connection refused, timed out,
  HTTP 404 (wrong path), a gRPC endpoint spoken to over HTTP or the reverse, TLS expected or not;
- looks for the known ways to see nothing (:func:`diagnose` lists them).

Exit status: 0 when traces and logs will arrive, 1 when something keeps them from arriving, 2 when
the app could not be loaded. ``--json`` prints the same as one JSON document.

One module per job, in the order a run goes through them::

    command    (loads the app, runs the diagnosis, prints; the exit status)
    diagnosis  (every check, in the report's order)
      describe   (the configuration and where each value came from, the OTEL_* variables, signals)
      exporters  (the span exporters behind the processors; the sampler, tried)
      testspan   -> otlp_http, otlp_grpc (one test span, sent once; what became of it, in words)
                    sniff (what speaks on a port), words (what an endpoint said, bounded and escaped)
      pitfalls   (the known ways to see nothing: instrumented twice, paths, log level and file,
                  structlog, fork)
    report     (findings, test span deliveries, the verdict) -> render (the report in words)

The log record and metrics exporters are checked by ``flask_sigobs.outputs.probe``.
"""

from __future__ import annotations

from .command import load_app, run
from .diagnosis import diagnose
from .exporters import ExporterInfo, sampler_name
from .render import render
from .report import OK, PROBLEM, WARNING, Delivery, Finding, Report, verdict
from .sniff import sniff
from .testspan import send_test_span_to

__all__ = ["OK", "PROBLEM", "WARNING", "Delivery", "ExporterInfo", "Finding", "Report", "diagnose", "load_app",
           "render", "run", "sampler_name", "send_test_span_to", "sniff", "verdict"]
