"""The metrics output: the stable HTTP server metrics and the auth event counters, over OTLP.

On when ``SIGOBS_METRICS_EXPORTER`` (or the standard ``OTEL_METRICS_EXPORTER``) is ``otlp`` (or
``console``):

- ``http.server.request.duration`` (histogram, seconds, the conventions' bucket advice) with
  ``http.request.method``, ``http.route``, ``http.response.status_code``, ``url.scheme`` and, for
  a 5xx or an exception, ``error.type``; ``http.server.active_requests`` (up-down counter) with
  ``http.request.method`` and ``url.scheme``. Recorded here only when flask-sigobs makes the
  request span from the signals: the standard instrumentation records both itself, and when it
  makes the span (``SIGOBS_SPAN_SOURCE=otel``, or an app instrumented already) it is given our
  meter provider instead, so each request is measured once. Excluded paths are not measured.
- ``sigobs.auth.events`` (counter, ``{event}``) with ``event.name`` and ``outcome``
  (``success``, or ``failure`` for an event at ``warning`` or above: a refused login, a denial).

Each process exports its own series: the resource carries ``service.name`` and a
``service.instance.id`` unique to the process, renewed in a forked child (a gunicorn worker of a
``--preload`` master), so a Collector's Prometheus exporter gives every worker its own
``instance``. In the child, the parent's provider (whose reader thread the SDK restarted) is
muted and shut down: what the parent measured is the parent's to say. The provider is flushed at
exit; a failing export is counted and reported once per interval.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import uuid
import weakref
from typing import Any

from opentelemetry.metrics import MeterProvider as _APIMeterProvider

from ..errors import Tally
from ..events import Event
from . import durations, otlp

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
AUTH_EVENTS = "sigobs.auth.events"
_METRICS: "weakref.WeakSet[MetricsOutput]" = weakref.WeakSet()


def _prefers_delta(exporter: Any) -> bool:
    from opentelemetry.sdk.metrics import Histogram
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    preferred = getattr(exporter, "_preferred_temporality", None) or {}
    return preferred.get(Histogram) is AggregationTemporality.DELTA


def _points(metrics_data: Any) -> int:
    return sum(len(metric.data.data_points) for resource in metrics_data.resource_metrics
               for scope in resource.scope_metrics for metric in scope.metrics)


class MetricsOutput:
    """One app's meters. ``emit`` (the delivery loop) counts auth events; ``started`` and
    ``finished`` (the request's start and end) record the HTTP server metrics."""

    name = "metrics"

    def __init__(self, service_name: str, exporter: Any, auth_events: frozenset[str],
                 app_provider: Any = None, report_interval: float = 60.0, make_exporter: Any = None) -> None:
        self.service_name = service_name
        self._exporter = exporter
        #: a new exporter for a forked child (its own connections), when we made the first one
        self._make_exporter = make_exporter
        self._auth_events = auth_events
        self._report_interval = report_interval
        self.owner = "app" if app_provider is not None else "flask-sigobs"
        self.failures = Tally("metrics_failed", "flask-sigobs could not export %d metric data points in the last "
                              f"%.0f s: the metric exporter ({otlp.describe(exporter)}) failed or timed out",
                              report_interval)
        self._active_attributes: dict[tuple[str, str], dict[str, str]] = {}
        self._active_counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._auth_attributes: dict[tuple[str, int], dict[str, str]] = {}
        self.facade = MeterFacade(self)
        self.provider: Any = None
        self._accounting: Any = None
        self._build(app_provider)
        reference = weakref.ref(self)
        atexit.register(lambda: (m := reference()) is not None and m.shutdown())
        os.register_at_fork(after_in_child=lambda: (m := reference()) is not None and m._after_fork())
        _METRICS.add(self)

    def _build(self, app_provider: Any = None) -> None:
        if app_provider is not None:
            provider = app_provider
        else:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource

            self.instance_id = str(uuid.uuid4())
            self._accounting = otlp.Accounting(self._exporter, self.failures, _points)
            resource = Resource.create({SERVICE_NAME: self.service_name, "service.instance.id": self.instance_id})
            self.durations = durations.Durations(DURATION_BUCKETS, _prefers_delta(self._exporter))
            reader = durations.reader(self._accounting, self.durations, resource)
            extra: dict[str, Any] = {}
            if not os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER"):
                # No exemplars unless asked: offering each measurement to a reservoir, with the
                # request's span in the context, costs more than recording it.
                from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

                extra["exemplar_filter"] = AlwaysOffExemplarFilter()
            provider = MeterProvider(metric_readers=[reader], resource=resource, shutdown_on_exit=False, **extra)
            provider._sigobs_owned = True  # type: ignore[attr-defined]
            self._shut = False
        self.provider = provider
        meter = provider.get_meter("flask_sigobs")
        if app_provider is not None:  # the app's provider: its reader is not ours to extend
            self.durations = None
            self.duration = meter.create_histogram(
                durations.NAME, unit="s", description=durations.DESCRIPTION,
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS))
        # Counted here, said at collection: two SDK add() calls a request cost more than the request's
        # other measurement; an observable counter reports the same sums.
        from opentelemetry.metrics import Observation

        counts = self._active_counts

        def observe(options: Any) -> list[Any]:
            return [Observation(counts[key], attributes) for key, attributes in list(self._active_attributes.items())]

        self.active = meter.create_observable_up_down_counter(
            "http.server.active_requests", callbacks=[observe], unit="{request}",
            description="Number of active HTTP server requests.")
        self.auth = meter.create_counter(
            AUTH_EVENTS, unit="{event}", description="Authentication events, by event name and outcome.")
        self.facade.rebind()

    def _after_fork(self) -> None:
        """A new process: its own instance id and provider; the parent's copy says nothing more."""
        if self.owner != "flask-sigobs":
            return
        old, accounting = self.provider, self._accounting
        self.failures.reset()
        self._lock = threading.Lock()
        for key in self._active_counts:  # the parent's requests in flight are not the child's
            self._active_counts[key] = 0
        if accounting is not None:
            accounting.muted = True  # its last export and its shutdown: nothing sent, nothing closed
        if self._make_exporter is not None:
            try:
                self._exporter = self._make_exporter()
            except Exception:  # the parent's (its connections are dropped by a failing export)
                pass
        self._build()  # new durations too: the parent's are the parent's
        try:
            old.shutdown(timeout_millis=1000)
        except Exception:
            pass

    # -- the per-request path (only when we make the request span) ---------------------------

    def started(self, environ: dict[str, Any]) -> tuple[str, str]:
        """The request began: one more active request; the key to end it with."""
        method = environ.get("REQUEST_METHOD", "")
        if method not in KNOWN_METHODS:
            method = "_OTHER"  # the conventions' word for any other: the series stay bounded
        key = (method, "https" if environ.get("wsgi.url_scheme") == "https" else "http")
        with self._lock:  # threads of a threaded server: += is three steps
            counts = self._active_counts
            if key not in counts:
                self._active_attributes[key] = {"http.request.method": key[0], "url.scheme": key[1]}
                counts[key] = 0
            counts[key] += 1
        return key

    def finished(self, key: tuple[str, str], seconds: float, route: str | None, status: int | None,
                 error: BaseException | None) -> None:
        with self._lock:
            self._active_counts[key] -= 1
        if error is not None:
            cls = type(error)
            error_type: str | None = cls.__qualname__ if cls.__module__ == "builtins" else \
                f"{cls.__module__}.{cls.__qualname__}"
        elif status is not None and status >= 500:
            error_type = str(status)
        else:
            error_type = None

        def attributes() -> dict[str, Any]:  # made once per series
            made: dict[str, Any] = dict(self._active_attributes[key])
            if route is not None:
                made["http.route"] = route
            if status is not None:
                made["http.response.status_code"] = status
            if error_type is not None:
                made["error.type"] = error_type
            return made

        if self.durations is not None:
            self.durations.record((key, route, status, error_type), attributes, seconds)
        else:
            self.duration.record(seconds, attributes())

    # -- the delivery loop ---------------------------------------------------------------------

    def emit(self, event: Event, span: Any, trace_id: str | None, span_id: str | None) -> None:
        name = event.name
        if name in self._auth_events or (name.startswith("auth.") and name != "auth.login_fail_max"):
            key = (name, event.level)
            attributes = self._auth_attributes.get(key)
            if attributes is None:
                outcome = "failure" if event.level >= logging.WARNING else "success"
                attributes = self._auth_attributes.setdefault(key, {"event.name": name, "outcome": outcome})
            self.auth.add(1, attributes)

    def flush(self, timeout_millis: int = 5000) -> None:
        if self.owner == "flask-sigobs":
            self.provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        if self.owner == "flask-sigobs" and not getattr(self, "_shut", False):
            self._shut = True
            self.provider._sigobs_shut = True
            try:
                self.provider.shutdown(timeout_millis=10_000)  # a stuck export must not hold the exit
            finally:
                self.failures.flush()


class MeterFacade(_APIMeterProvider):
    """A meter provider for the standard instrumentation that always measures with ours, also
    after a fork renewed it (the instrumentation creates its instruments once, at instrument_app)."""

    def __init__(self, output: MetricsOutput) -> None:
        self._output = output
        self._instruments: list[_Forwarding] = []

    def get_meter(self, name: str, version: str | None = None, schema_url: str | None = None,
                  *args: Any, **kwargs: Any) -> "_FacadeMeter":
        return _FacadeMeter(self, (name, version, schema_url))

    def rebind(self) -> None:
        for instrument in self._instruments:
            instrument.bind(self._output.provider)


class _FacadeMeter:
    def __init__(self, facade: MeterFacade, meter_args: tuple[Any, ...]) -> None:
        self._facade = facade
        self._meter_args = meter_args

    def __getattr__(self, method: str) -> Any:
        if not method.startswith("create_"):
            raise AttributeError(method)

        def create(*args: Any, **kwargs: Any) -> _Forwarding:
            instrument = _Forwarding(self._meter_args, method, args, kwargs)
            instrument.bind(self._facade._output.provider)
            self._facade._instruments.append(instrument)
            return instrument

        return create


class _Forwarding:
    def __init__(self, meter_args: tuple[Any, ...], method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._meter_args, self._method, self._args, self._kwargs = meter_args, method, args, kwargs
        self.real: Any = None

    def bind(self, provider: Any) -> None:
        if getattr(provider, "_sigobs_shut", False):  # after our shutdown (at exit): measure nothing, quietly
            from opentelemetry.metrics import NoOpMeterProvider

            provider = NoOpMeterProvider()
        meter = provider.get_meter(*self._meter_args)
        self.real = getattr(meter, self._method)(*self._args, **self._kwargs)

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.real.add(*args, **kwargs)

    def record(self, *args: Any, **kwargs: Any) -> None:
        self.real.record(*args, **kwargs)

    def set(self, *args: Any, **kwargs: Any) -> None:
        self.real.set(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def build(kind: Any, service_name: str, auth_events: frozenset[str]) -> MetricsOutput | None:
    """The metrics output ``kind`` asks for (``otlp``, ``console``, a MetricExporter), or None."""
    from opentelemetry import metrics

    current = metrics.get_meter_provider()
    proxy = type(current).__name__ in ("_ProxyMeterProvider", "ProxyMeterProvider", "NoOpMeterProvider")
    if not proxy and not getattr(current, "_sigobs_owned", False) and not isinstance(current, MeterFacade):
        return MetricsOutput(service_name, None, auth_events, app_provider=current)
    make = {"otlp": otlp.metric_exporter, "console": otlp.console_metric_exporter}.get(kind) \
        if isinstance(kind, str) else None
    exporter = make() if make is not None else kind  # else an exporter instance (app.config)
    if exporter is None:
        return None
    output = MetricsOutput(service_name, exporter, auth_events, make_exporter=make)
    if proxy and type(current).__name__ != "NoOpMeterProvider":
        metrics.set_meter_provider(output.facade)  # other instrumentations measure with ours too
    return output


def accounts() -> dict[str, int]:
    outputs = list(_METRICS)
    return {"exported": sum(o._accounting.exported for o in outputs if o._accounting is not None),
            "failed": sum(o.failures.total for o in outputs)}
