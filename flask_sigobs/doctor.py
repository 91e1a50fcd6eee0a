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
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import ssl
import sys
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from .tail.terminal import escape

OK, WARNING, PROBLEM = "ok", "warning", "problem"

# -- the report -------------------------------------------------------------------------------


@dataclass
class Finding:
    """One check: ``ok``, a ``warning`` (worth knowing, output still arrives) or a ``problem``."""

    check: str
    status: str
    words: str
    fix: str | None = None


@dataclass
class Delivery:
    """What became of the test span."""

    outcome: str  # accepted | refused | timed_out | wrong_path | wrong_protocol | tls | rejected | http_error | error
    words: str
    endpoint: str
    protocol: str
    seconds: float
    http_status: int | None = None
    grpc_code: str | None = None
    trace_id: str | None = None
    fix: str | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"


@dataclass
class Report:
    app: str
    import_path: str
    attached_by: str = ""
    configuration: dict[str, dict[str, Any]] = field(default_factory=dict)
    otel_variables: dict[str, str] = field(default_factory=dict)
    signals: list[str] = field(default_factory=list)
    opentelemetry: dict[str, Any] = field(default_factory=dict)
    structlog: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, Any] = field(default_factory=dict)
    exporters: list[dict[str, Any]] = field(default_factory=list)
    sampler: dict[str, Any] = field(default_factory=dict)
    test_spans: list[Delivery] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, status: str, words: str, fix: str | None = None) -> None:
        self.findings.append(Finding(check, status, words, fix))

    @property
    def ok(self) -> bool:
        return not any(f.status == PROBLEM for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["problems"] = [f.words for f in self.findings if f.status == PROBLEM]
        data["verdict"] = verdict(self)
        return data


def verdict(report: Report) -> str:
    if report.ok:
        return "traces and logs will arrive"
    problems = sum(1 for f in report.findings if f.status == PROBLEM)
    return f"{problems} problem{'s' if problems != 1 else ''} will keep traces or logs from arriving"


# -- loading the app --------------------------------------------------------------------------


def load_app(spec: str | None) -> tuple[Any, str]:
    """The app ``spec`` names, as ``flask --app`` reads it; or the app of the running ``flask`` command."""
    from flask.cli import ScriptInfo

    if spec is None:
        try:
            import click

            context = click.get_current_context(silent=True)
        except Exception:
            context = None
        info = context.find_object(ScriptInfo) if context is not None else None
        if info is not None:  # `flask --app X sigobs doctor`
            return info.load_app(), info.app_import_path or os.environ.get("FLASK_APP") or "(flask)"
        spec = os.environ.get("FLASK_APP")
    info = ScriptInfo(app_import_path=spec, set_debug_flag=False)
    return info.load_app(), spec or "(wsgi.py or app.py)"


# -- the checks -------------------------------------------------------------------------------


def diagnose(app: Any, import_path: str, *, timeout: float | None = None, send_test_span: bool = True,
             before: dict[str, Any] | None = None) -> Report:
    """Everything the doctor says about ``app`` (already imported; ``before``: the state before)."""
    from . import autoattach

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
    from .outputs import probe  # log records and metrics (outputs/): on, off, a test record each

    probe.check(report, runtime, timeout, send_test_span and not _sdk_disabled(), OK, WARNING, PROBLEM)
    _check_instrumented_once(report, app, runtime)
    _check_excluded_paths(report, app, runtime)
    _check_log_level(report, settings)
    _check_log_destination(report, runtime)
    _check_structlog(report, runtime)
    _check_fork(report, runtime, before, exporters)
    return report


def _where() -> str:
    from . import autoattach

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
    from . import config

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
    from . import auth, catalogue
    from .bridges import flask_login, flask_security

    names = [f"flask.{name}" for name in catalogue.SIGNALS if name in settings.signals]
    names += [f"auth.{signal.name}" for signal in auth.LEVELS]
    names += [source.event for source in flask_login.signals() + flask_security.signals()]
    names += [source.event for source in getattr(settings, "configured_signals", ())]
    for signal, (event, _, _, _) in getattr(sigobs, "_observed", {}).items():
        names.append(event or getattr(signal, "name", "?"))
    return names


def _sdk_disabled() -> bool:
    return str(os.environ.get("OTEL_SDK_DISABLED", "")).strip().lower() == "true"


def _check_fast_path(report: Report, runtime: Any) -> None:
    """Which way spans and response headers are made: the short way, or the public API and why."""
    from . import selfcheck

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


# -- exporters --------------------------------------------------------------------------------


@dataclass
class ExporterInfo:
    kind: str  # otlp-http | otlp-grpc | console | in-memory | other
    exporter: Any
    processor: Any
    endpoint: str | None = None

    @property
    def protocol(self) -> str:
        return {"otlp-http": "http/protobuf", "otlp-grpc": "grpc"}.get(self.kind, "-")

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "class": _type_name(self.exporter), "processor": _type_name(self.processor),
                "endpoint": _without_userinfo(self.endpoint) if self.endpoint else None, "protocol": self.protocol}


def _processors(provider: Any) -> list[Any]:
    active = getattr(provider, "_active_span_processor", None)
    return list(getattr(active, "_span_processors", ()) or ())


def _exporter_of(processor: Any) -> Any:
    exporter = getattr(processor, "span_exporter", None)
    if exporter is None:
        batch = getattr(processor, "_batch_processor", None)
        exporter = getattr(batch, "_exporter", None) or getattr(processor, "_exporter", None)
    inner = getattr(exporter, "inner", None)  # our accounting wrapper
    return inner if inner is not None else exporter


def _exporters(provider: Any) -> list[ExporterInfo]:
    found = []
    for processor in _processors(provider):
        exporter = _exporter_of(processor)
        if exporter is None:
            continue
        module = type(exporter).__module__
        name = type(exporter).__name__
        if module.startswith("opentelemetry.exporter.otlp.proto.http"):
            found.append(ExporterInfo("otlp-http", exporter, processor, getattr(exporter, "_endpoint", None)))
        elif module.startswith("opentelemetry.exporter.otlp.proto.grpc"):
            endpoint = getattr(exporter, "_endpoint", None)
            if endpoint and "://" not in endpoint:
                endpoint = ("http://" if getattr(exporter, "_insecure", True) else "https://") + endpoint
            found.append(ExporterInfo("otlp-grpc", exporter, processor, endpoint))
        elif name == "ConsoleSpanExporter":
            found.append(ExporterInfo("console", exporter, processor))
        elif name == "InMemorySpanExporter":
            found.append(ExporterInfo("in-memory", exporter, processor))
        else:
            found.append(ExporterInfo("other", exporter, processor))
    return found


def _check_exporters(report: Report, runtime: Any, exporters: list[ExporterInfo]) -> None:
    if not hasattr(runtime.tracer_provider, "add_span_processor"):
        return
    if not exporters:
        kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
        if runtime.otel_owner != "flask-sigobs":
            report.add("exporter", PROBLEM,
                       "the app's own TracerProvider has no span exporter: spans are recorded, then dropped",
                       "add a span processor with an exporter to the app's TracerProvider, or let flask-sigobs "
                       "set OpenTelemetry up (do not set a TracerProvider)")
        elif kind == "none":
            report.add("exporter", PROBLEM, "OTEL_TRACES_EXPORTER=none: spans are not exported",
                       "set OTEL_TRACES_EXPORTER=otlp and OTEL_EXPORTER_OTLP_ENDPOINT")
        else:
            report.add("endpoint", PROBLEM,
                       "no endpoint configured: neither OTEL_EXPORTER_OTLP_ENDPOINT nor "
                       "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, so spans are recorded and never sent",
                       "set OTEL_EXPORTER_OTLP_ENDPOINT=http://<collector>:4318 (http/protobuf) or "
                       "OTEL_EXPORTER_OTLP_ENDPOINT=http://<collector>:4317 with OTEL_EXPORTER_OTLP_PROTOCOL=grpc")
        return
    for info in exporters:
        if info.kind in ("otlp-http", "otlp-grpc"):
            report.add("endpoint", OK, f"spans are exported over OTLP {info.protocol} to "
                                       f"{_without_userinfo(info.endpoint or '?')}")
        elif info.kind == "console":
            report.add("exporter", OK, "spans are printed on standard output (OTEL_TRACES_EXPORTER=console)")
        elif info.kind == "in-memory":
            report.add("exporter", WARNING, "spans go to an in-memory exporter: they stay inside the process "
                                            "(a test set-up?)")
        else:
            report.add("exporter", WARNING, f"spans go to {_type_name(info.exporter)}: not an exporter the "
                                            "doctor can test; no test span sent")


def _check_sampler(report: Report, provider: Any) -> None:
    sampler = getattr(provider, "sampler", None)
    if sampler is None:
        return
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.trace import SpanKind

    description = sampler_name(sampler)
    ids = RandomIdGenerator()
    tries = 2000
    kept = 0
    try:
        for _ in range(tries):
            result = sampler.should_sample(None, ids.generate_trace_id(), "GET /", SpanKind.SERVER)
            kept += bool(result.decision.is_sampled())
    except Exception as exc:
        report.sampler = {"description": description, "error": repr(exc)}
        report.add("sampler", WARNING, f"the sampler {description} could not be tried: {exc!r}")
        return
    share = kept / tries
    report.sampler = {"description": description, "kept_share_of_new_traces": round(share, 3),
                      "OTEL_TRACES_SAMPLER": os.environ.get("OTEL_TRACES_SAMPLER"),
                      "OTEL_TRACES_SAMPLER_ARG": os.environ.get("OTEL_TRACES_SAMPLER_ARG")}
    if kept == 0:
        report.add("sampler", PROBLEM,
                   f"the sampler {description} drops every new trace (0 of {tries} kept): no request gets a span",
                   "unset OTEL_TRACES_SAMPLER (or set it to parentbased_always_on), or raise OTEL_TRACES_SAMPLER_ARG")
    elif kept < tries:
        report.add("sampler", WARNING if share < 0.5 else OK,
                   f"the sampler {description} keeps about {share:.0%} of new traces: the other requests get no "
                   f"span (their log lines are still written)")
    else:
        report.add("sampler", OK, f"the sampler {description} keeps every new trace")


def sampler_name(sampler: Any) -> str:
    """A sampler as ``OTEL_TRACES_SAMPLER`` names it: ``parentbased_always_on``, ``traceidratio(0.1)``."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    if isinstance(sampler, ParentBased):
        root = getattr(sampler, "_root", None)
        return f"parentbased_{sampler_name(root)}" if root is not None else "parentbased"
    if isinstance(sampler, TraceIdRatioBased):
        return f"traceidratio({sampler.rate})"
    description = sampler.get_description() if hasattr(sampler, "get_description") else type(sampler).__name__
    return {"AlwaysOnSampler": "always_on", "AlwaysOffSampler": "always_off"}.get(description, description)


# -- the test span ----------------------------------------------------------------------------


def _test_span(provider: Any) -> Any:
    """One finished SDK span, with the app's resource (its service name), made without exporting it."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.trace import SpanKind

    captured: list[Any] = []

    class Keep(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            captured.extend(spans)
            return SpanExportResult.SUCCESS

    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    resource = getattr(provider, "resource", None) or Resource.create({})
    local = TracerProvider(resource=resource, sampler=ALWAYS_ON, shutdown_on_exit=False)
    local.add_span_processor(SimpleSpanProcessor(Keep()))
    tracer = local.get_tracer("flask_sigobs.doctor")
    with tracer.start_as_current_span("sigobs doctor test span", kind=SpanKind.INTERNAL,
                                      attributes={"sigobs.doctor": True}) as span:
        span.add_event("sigobs.doctor", {"message": "a test span sent by `sigobs doctor`"})
    local.shutdown()
    return captured[0]


def _probe_timeout(exporter: Any, timeout: float | None) -> float:
    if timeout is not None:
        return max(0.1, min(float(timeout), 30.0))
    own = getattr(exporter, "_timeout", None)
    client = getattr(exporter, "_client", None)
    own = getattr(client, "_timeout", None) or own
    try:
        return max(0.1, min(float(own), 30.0)) if own else 10.0
    except (TypeError, ValueError):
        return 10.0


def send_test_span_to(info: ExporterInfo, provider: Any, timeout: float | None = None) -> Delivery:
    """Send one test span through ``info``'s exporter client, once, and say what happened."""
    span = _test_span(provider)
    trace_id = format(span.context.trace_id, "032x")
    seconds = _probe_timeout(info.exporter, timeout)
    endpoint = _without_userinfo(info.endpoint or "?")
    start = time.monotonic()
    try:
        if info.kind == "otlp-http":
            delivery = _send_http(info, span, seconds)
        else:
            delivery = _send_grpc(info, span, seconds)
    except Exception as exc:  # the doctor's own failure must still be said in words
        delivery = Delivery("error", f"could not be sent: {type(exc).__name__}: {exc}", endpoint, info.protocol, 0.0)
    delivery.seconds = round(time.monotonic() - start, 3)
    delivery.endpoint = endpoint
    delivery.trace_id = trace_id
    if delivery.accepted:
        delivery.words += f" in {delivery.seconds * 1000:.0f} ms (trace id {trace_id}, service "\
                          f"{_resource_service(provider) or '?'})"
    return delivery


def _address(host: str, port: int) -> str:
    """``host:port`` as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _host_port(endpoint: str, default_port: int) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
    return parts.hostname or "localhost", parts.port or (443 if parts.scheme == "https" else default_port), parts.scheme


def _send_http(info: ExporterInfo, span: Any, seconds: float) -> Delivery:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    exporter = info.exporter
    endpoint = info.endpoint or ""
    client = getattr(exporter, "_client", None)
    transport = getattr(client, "_transport", None)
    if transport is None and _SessionTransport.fits(exporter):  # SDK releases before 1.45: its own session
        client = transport = _SessionTransport(exporter)
    if transport is None:  # an exporter whose insides moved: its own export, success or not
        ok = exporter.export([span]).name == "SUCCESS"
        return Delivery("accepted" if ok else "error", "accepted" if ok else "failed (see the exporter's log)",
                        endpoint, info.protocol, 0.0)
    data = encode_spans([span]).SerializePartialToString()
    compress = getattr(client, "_compress", None)
    if compress is not None:
        data = compress(data)
    headers = dict(getattr(client, "_headers", {}) or {})
    result = transport.request("POST", getattr(client, "_endpoint", endpoint), headers=headers, data=data,
                               timeout=seconds)
    return _classify_http(result, endpoint, seconds, info.protocol, _ca_file_replaced(transport))


class _SessionTransport:
    """The OTLP/HTTP exporter of SDK releases before 1.45, which posts with a requests session of its
    own (``_session``, ``_endpoint``, ``_compression``, ``_certificate_file``, ``_client_cert``), in
    the shape of the newer exporters' client and transport, so the test span is sent the same way."""

    def __init__(self, exporter: Any) -> None:
        self._exporter = exporter
        self._session = exporter._session
        self._endpoint = exporter._endpoint
        self._headers: dict[str, str] = {}  # the session carries the exporter's headers already
        kind = str(getattr(getattr(exporter, "_compression", None), "name", "")).lower()
        if kind == "gzip":
            import gzip

            self._compress: Callable[[bytes], bytes] | None = gzip.compress
        elif kind == "deflate":
            import zlib

            self._compress = zlib.compress
        else:
            self._compress = None

    @staticmethod
    def fits(exporter: Any) -> bool:
        import requests

        return isinstance(getattr(exporter, "_session", None), requests.Session) and \
            isinstance(getattr(exporter, "_endpoint", None), str)

    def request(self, method: str, url: str, headers: dict[str, str], data: bytes, timeout: float) -> Any:
        exporter = self._exporter
        try:
            response = self._session.request(method, url, headers=headers or None, data=data, timeout=timeout,
                                             verify=getattr(exporter, "_certificate_file", True),
                                             cert=getattr(exporter, "_client_cert", None))
        except Exception as error:  # refused, timed out, TLS: said in words by _classify_http_error
            return _SessionResult(None, error)
        return _SessionResult(response, None)


@dataclass
class _SessionResult:
    response: Any
    error: BaseException | None

    @property
    def status_code(self) -> int | None:
        return None if self.response is None else self.response.status_code

    def content(self) -> bytes:
        return b"" if self.response is None else self.response.content


def _ca_file_replaced(transport: Any) -> str | None:
    """The variable (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) with which requests replaces the
    CA file the exporter gave its session (psf/requests#3829), if it does."""
    session = getattr(transport, "_session", None)
    if not isinstance(getattr(session, "verify", None), str) or not getattr(session, "trust_env", False):
        return None
    import requests

    if type(session).merge_environment_settings is not requests.Session.merge_environment_settings:
        return None  # a session that chooses for itself (flask-sigobs's keeps the CA file first)
    return next((name for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") if os.environ.get(name)), None)


def _classify_http(result: Any, endpoint: str, seconds: float, protocol: str,
                   ca_file_replaced: str | None = None) -> Delivery:
    host, port, scheme = _host_port(endpoint, 4318)
    where = _address(host, port)
    status = result.status_code
    if status is None:
        return _classify_http_error(result.error, endpoint, host, port, scheme, seconds, protocol,
                                    ca_file_replaced)
    body = b""
    try:
        body = result.content() or b""
    except Exception:
        pass
    if 200 <= status < 300:
        rejected = _rejected(_parsed_response(body), endpoint, protocol, http_status=status)
        return rejected or Delivery("accepted", f"accepted (HTTP {status})", endpoint, protocol, 0.0,
                                    http_status=status)
    path = urllib.parse.urlsplit(endpoint).path or "/"
    text = _said(body, result)
    if status == 404:
        fix = ("OTLP/HTTP takes traces at /v1/traces: set OTEL_EXPORTER_OTLP_ENDPOINT to the base URL "
               "(http://host:4318, the exporter adds /v1/traces) or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT to the "
               "full URL ending in /v1/traces")
        return Delivery("wrong_path", f"HTTP 404 (wrong path): nothing at {path} on {where}",
                        endpoint, protocol, 0.0, http_status=status, fix=fix)
    if status == 400 and "HTTPS server" in text:  # a TLS server's answer to plain HTTP: said as when it resets
        return Delivery("tls", f"TLS expected: {where} speaks TLS, the exporter sent plain HTTP (http://)",
                        endpoint, protocol, 0.0, http_status=status, fix=f"use https://{where}")
    if status in (401, 403):
        words, fix = _credentials_words()
        return Delivery("http_error", f"HTTP {status} ({'unauthenticated' if status == 401 else 'forbidden'}): "
                                      f"{words}" + (f" ({text.strip()[:200]})" if text.strip() else ""),
                        endpoint, protocol, 0.0, http_status=status, fix=fix)
    if status in (405, 415):
        return Delivery("wrong_path", f"HTTP {status}: {where}{path} is not an OTLP/HTTP traces endpoint",
                        endpoint, protocol, 0.0, http_status=status,
                        fix="point OTEL_EXPORTER_OTLP_ENDPOINT at an OpenTelemetry Collector's OTLP/HTTP port (4318)")
    if 300 <= status < 400:
        return Delivery("http_error", f"HTTP {status}: redirected; OTLP exporters do not follow redirects",
                        endpoint, protocol, 0.0, http_status=status, fix="use the URL the redirect points to")
    words = f"HTTP {status}" + (f": {text.strip()[:200]}" if text.strip() else "")
    if status == 429 or status >= 500:
        words += " (the collector is busy or failing)"
    return Delivery("http_error", words, endpoint, protocol, 0.0, http_status=status)


def _said(body: bytes, result: Any) -> str:
    """What an error response says, as text: a Collector answers OTLP/HTTP in the request's
    encoding, so a protobuf request gets a protobuf ``google.rpc.Status`` (its message is the text)."""
    response = getattr(result, "response", None)
    kind = str(getattr(response, "headers", {}).get("Content-Type", "")) if response is not None else ""
    if "protobuf" in kind:
        try:
            from google.rpc.status_pb2 import Status

            status = Status()
            status.ParseFromString(body)
            return _their_words(status.message)
        except Exception:
            return ""
    return _their_words(body[:300].decode("utf-8", "replace"))


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


def _parsed_response(body: bytes) -> Any:
    """The ``ExportTraceServiceResponse`` of an OTLP/HTTP answer, or ``None``."""
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        response = ExportTraceServiceResponse()
        response.ParseFromString(body)
        return response
    except Exception:
        return None


def _rejected(response: Any, endpoint: str, protocol: str, **extra: Any) -> Delivery | None:
    """A successful export whose answer is a partial success that refused the span: OTLP's way for a
    backend to say why it dropped spans. The exporters pass it over in silence."""
    partial = getattr(response, "partial_success", None)
    if partial is None or not partial.rejected_spans:
        return None
    return Delivery("rejected", f"the collector took the request but rejected the span: "
                                f"{_their_words(partial.error_message)}",
                    endpoint, protocol, 0.0, fix="see the collector's log for why it rejects spans", **extra)


def _chain(error: BaseException | None) -> str:
    """The text of an exception and of those it wraps."""
    parts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        parts.append(f"{type(error).__name__}: {error}")
        for arg in getattr(error, "args", ()):
            if isinstance(arg, BaseException):
                parts.append(f"{type(arg).__name__}: {arg}")
        reason = getattr(error, "reason", None)
        if isinstance(reason, BaseException):
            parts.append(f"{type(reason).__name__}: {reason}")
        error = error.__cause__ or error.__context__
    return " | ".join(parts)


def _classify_http_error(error: Any, endpoint: str, host: str, port: int, scheme: str, seconds: float,
                         protocol: str, ca_file_replaced: str | None = None) -> Delivery:
    where = _address(host, port)
    text = _chain(error)
    lower = text.lower()
    if "connection refused" in lower or "errno 111" in lower:
        return Delivery("refused", f"connection refused: nothing listens on {where}", endpoint, protocol, 0.0,
                        fix="start the collector, or fix the host and port of OTEL_EXPORTER_OTLP_ENDPOINT")
    if "name or service not known" in lower or "nodename nor servname" in lower or "failed to resolve" in lower \
            or "name resolution" in lower:
        return Delivery("error", f"the host name {host!r} cannot be resolved", endpoint, protocol, 0.0,
                        fix="fix the host of OTEL_EXPORTER_OTLP_ENDPOINT")
    if "ssl" in lower or "certificate" in lower or "tls" in lower:
        sniffed = sniff(host, port, min(seconds, 2.0))
        plain = "wrong_version_number" in lower or sniffed in ("http1", "http2")
        if not plain and "certificate" in lower and "verify" in lower and ca_file_replaced:
            return Delivery("tls", f"TLS: the certificate of {where} is not trusted: {ca_file_replaced} "
                                   "replaces the exporter's CA file (OTEL_EXPORTER_OTLP_CERTIFICATE) in requests, "
                                   "its HTTP client (psf/requests#3829)", endpoint, protocol, 0.0,
                            fix=f"unset {ca_file_replaced} for the app (or add the collector's CA to it), or let "
                                "flask-sigobs set up the exporter: its exporter keeps the CA file first")
        if not plain and "certificate" in lower and "verify" in lower:
            return Delivery("tls", f"TLS: the certificate of {where} is not trusted ({_short(text)})",
                            endpoint, protocol, 0.0, fix="set OTEL_EXPORTER_OTLP_CERTIFICATE to the CA's certificate")
        if plain:
            return Delivery("tls", f"TLS not expected: the exporter speaks TLS (https://) but {where} "
                                   f"answers in plain text", endpoint, protocol, 0.0,
                            fix=f"use http://{where} (or give the collector a TLS certificate)")
        return Delivery("tls", f"TLS handshake failed with {where}: {_short(text)}", endpoint, protocol, 0.0)
    if "timed out" in lower or "timeout" in lower:
        sniffed = sniff(host, port, min(seconds, 2.0))
        if sniffed == "http2":
            return _wrong_protocol_http(endpoint, host, port, protocol)
        return Delivery("timed_out", f"timed out after {seconds:g} s: {where} accepted the connection but "
                                     f"never answered (a black hole: a firewall, a hung or non-OTLP server)"
                        if "read" in lower or sniffed == "silent" else
                        f"timed out after {seconds:g} s connecting to {where}", endpoint, protocol, 0.0,
                        fix="check that the port is the collector's OTLP/HTTP port (4318) and that it is healthy")
    sniffed = sniff(host, port, min(seconds, 2.0))
    if sniffed == "http2":
        return _wrong_protocol_http(endpoint, host, port, protocol)
    if sniffed == "tls" and scheme == "http":
        return Delivery("tls", f"TLS expected: {where} speaks TLS, the exporter sent plain HTTP (http://)",
                        endpoint, protocol, 0.0, fix=f"use https://{where}")
    return Delivery("error", f"failed: {_short(text)}", endpoint, protocol, 0.0)


def _wrong_protocol_http(endpoint: str, host: str, port: int, protocol: str) -> Delivery:
    where = _address(host, port)
    return Delivery("wrong_protocol",
                    f"wrong protocol: {where} is a gRPC endpoint (HTTP/2), spoken to over OTLP/HTTP",
                    endpoint, protocol, 0.0,
                    fix="set OTEL_EXPORTER_OTLP_PROTOCOL=grpc for this port, or use the collector's OTLP/HTTP "
                        "port (4318 by default; 4317 is gRPC)")


def _short(text: str, limit: int = 240) -> str:
    """An error's text on one line, bounded, its control characters escaped: an exporter's error
    can quote what the server sent, and the report goes to a terminal."""
    text = " ".join(text.split())
    return escape(text if len(text) <= limit else text[:limit] + "...")


def _send_grpc(info: ExporterInfo, span: Any, seconds: float) -> Delivery:
    import grpc

    exporter = info.exporter
    endpoint = info.endpoint or ""
    host, port, scheme = _host_port(endpoint, 4317)
    client = getattr(exporter, "_client", None)
    if client is None and hasattr(exporter, "_initialize_channel_and_stub"):
        exporter._initialize_channel_and_stub()
        client = getattr(exporter, "_client", None)
    if client is None or not hasattr(exporter, "_translate_data"):
        ok = exporter.export([span]).name == "SUCCESS"
        return Delivery("accepted" if ok else "error", "accepted" if ok else "failed (see the exporter's log)",
                        endpoint, info.protocol, 0.0)
    try:
        response = client.Export(request=exporter._translate_data([span]),
                                 metadata=getattr(exporter, "_headers", None) or None, timeout=seconds)
    except grpc.RpcError as error:
        return _classify_grpc(error, endpoint, host, port, scheme, seconds, info.protocol,
                              insecure=bool(getattr(exporter, "_insecure", scheme != "https")))
    rejected = _rejected(response, endpoint, info.protocol, grpc_code="OK")
    return rejected or Delivery("accepted", "accepted (gRPC OK)", endpoint, info.protocol, 0.0, grpc_code="OK")


def _classify_grpc(error: Any, endpoint: str, host: str, port: int, scheme: str, seconds: float, protocol: str,
                   insecure: bool) -> Delivery:
    import grpc

    where = _address(host, port)

    code = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else str(error)) or ""
    name = code.name if code is not None else "UNKNOWN"
    lower = details.lower()

    def delivery(outcome: str, words: str, fix: str | None = None) -> Delivery:
        return Delivery(outcome, words, endpoint, protocol, 0.0, grpc_code=name, fix=fix)

    if "http1.x server" in lower or "http/1" in lower or ("404" in details and code == grpc.StatusCode.UNIMPLEMENTED):
        return _wrong_protocol_grpc(delivery, host, port)
    if "connection refused" in lower:
        return delivery("refused", f"connection refused: nothing listens on {where} (gRPC {name})",
                        "start the collector, or fix the host and port of OTEL_EXPORTER_OTLP_ENDPOINT")
    if "ssl" in lower or "handshake" in lower or "tls" in lower:
        plain = "wrong_version_number" in lower or sniff(host, port, min(seconds, 2.0)) in ("http1", "http2")
        if not plain and ("certificate" in lower or "verify" in lower):
            return delivery("tls", f"TLS: the certificate of {where} is not trusted ({_short(details)})",
                            "set OTEL_EXPORTER_OTLP_CERTIFICATE to the CA's certificate")
        return delivery("tls", f"TLS not expected: the exporter speaks TLS but {where} answers in plain "
                               f"text (gRPC {name})",
                        f"use http://{where} (or set OTEL_EXPORTER_OTLP_INSECURE=true)")
    sniffed = sniff(host, port, min(seconds, 2.0)) if code in (grpc.StatusCode.UNAVAILABLE,
                                                               grpc.StatusCode.DEADLINE_EXCEEDED,
                                                               grpc.StatusCode.UNKNOWN,
                                                               grpc.StatusCode.INTERNAL,
                                                               grpc.StatusCode.UNIMPLEMENTED) else None
    if sniffed == "http1":
        return _wrong_protocol_grpc(delivery, host, port)
    if sniffed == "tls" and insecure:
        return delivery("tls", f"TLS expected: {where} speaks TLS, the exporter connects in plain text",
                        f"use https://{where}")
    if sniffed == "refused":
        return delivery("refused", f"connection refused: nothing listens on {where} (gRPC {name})",
                        "start the collector, or fix the host and port of OTEL_EXPORTER_OTLP_ENDPOINT")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return delivery("timed_out", f"timed out after {seconds:g} s: {where} accepted the connection but "
                                     f"never answered (a black hole: a firewall, a hung or non-OTLP server)",
                        "check that the port is the collector's OTLP/gRPC port (4317) and that it is healthy")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return delivery("wrong_path", f"gRPC UNIMPLEMENTED: {where} speaks gRPC but has no OTLP trace "
                                      "service", "point OTEL_EXPORTER_OTLP_ENDPOINT at a collector's OTLP/gRPC port")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        words, fix = _credentials_words()
        return delivery("http_error", f"gRPC {name}: {words} ({_short(details)})", fix)
    return delivery("error", f"gRPC {name}: {_short(details)}")


def _wrong_protocol_grpc(delivery: Callable[..., Delivery], host: str, port: int) -> Delivery:
    where = _address(host, port)
    return delivery("wrong_protocol",
                    f"wrong protocol: {where} is an HTTP/1.1 endpoint (OTLP/HTTP?), spoken to over gRPC",
                    "set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf for this port, or use the collector's OTLP/gRPC "
                    "port (4317 by default; 4318 is OTLP/HTTP)")


SNIFF_BYTES = 512


def sniff(host: str, port: int, timeout: float = 2.0) -> str:
    """What speaks on ``host:port``, from the first bytes it answers to a plain HTTP/1.1 request.

    ``refused``, ``silent`` (accepts, never answers), ``closed`` (closes without a word),
    ``http1``, ``http2`` (an HTTP/2 SETTINGS frame: a gRPC server), ``tls`` or ``other``.
    """
    where = _address(host, port)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "unreachable"
    try:
        sock.settimeout(timeout)
        try:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {where}\r\nConnection: close\r\n\r\n".encode())
            data = sock.recv(SNIFF_BYTES)
        except socket.timeout:
            return "silent"
        except OSError:
            return "tls" if _speaks_tls(host, port, timeout) else "closed"
        # Go's TLS servers (the Collector's) answer plain HTTP with a 400 whose body, past its
        # headers, says "HTTPS": read on until it is there, the server closes, or it goes quiet.
        while data.startswith(b"HTTP/1.") and len(data) < SNIFF_BYTES:
            try:
                more = sock.recv(SNIFF_BYTES - len(data))
            except OSError:
                break
            if not more:
                break
            data += more
    finally:
        sock.close()
    if not data:  # a gRPC server that speaks TLS only closes on plain text without a word
        return "tls" if _speaks_tls(host, port, timeout) else "closed"
    if data.startswith(b"HTTP/1."):
        return "tls" if b"HTTPS" in data else "http1"
    if len(data) >= 9 and data[3] == 0x04 and data[4] in (0x00, 0x01):  # frame type SETTINGS
        return "http2"
    if data[0] == 0x15 and data[1] == 0x03:  # a TLS alert record
        return "tls"
    return "other"


def _speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` completes a TLS handshake. Only a probe: nothing is sent over it, so
    its certificate is not checked here (the exporter's own attempt says whether it is trusted)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host):
                return True
    except (OSError, ValueError):
        return False


# -- the known ways to see nothing ------------------------------------------------------------


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
    from .catalogue import LEVEL_NAMES

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


# -- the command ------------------------------------------------------------------------------


def _state_after_import(app: Any) -> dict[str, Any]:
    """What the app's import set up: a TracerProvider (before any fork), flask-sigobs itself."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    return {
        "provider_at_import": not isinstance(provider, trace.ProxyTracerProvider)
                              and not getattr(provider, "_sigobs_owned", False),
        "attached_at_import": "sigobs" in app.extensions,
    }


def run(args: Any) -> int:
    """``sigobs doctor``: 0 when traces and logs will arrive, 1 otherwise, 2 if the app cannot be loaded."""
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC's own notes of a failed handshake: said in words here
    try:
        app, where = load_app(getattr(args, "app", None))
    except Exception as exc:
        message = f"sigobs doctor: could not load the app: {type(exc).__name__}: {exc}"
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": message}))
        else:
            print(message, file=sys.stderr)
        return 2
    state = _state_after_import(app)
    report = diagnose(app, where, timeout=getattr(args, "timeout", None),
                      send_test_span=getattr(args, "test_span", True), before=state)
    if getattr(args, "json", False):
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        print(render(report))
    sys.stdout.flush()
    return 0 if report.ok else 1


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
