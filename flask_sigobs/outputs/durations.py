"""``http.server.request.duration``, aggregated here and handed to the metric reader as it exports.

The SDK's ``Histogram.record`` cleans, sorts and hashes the attributes of every measurement
(about 8 us a request on the benchmark machine, more than all the rest of the metrics); the
request path here finds its series by a tuple and adds to its bucket (a ``bisect``), and the
points are built once per export. :func:`reader` is a ``PeriodicExportingMetricReader`` whose
``_receive_metrics`` (the hook the SDK calls with each collection, before exporting it) adds the
histogram to what the SDK collected: one export, one resource, the SDK's other instruments
beside it. The data point classes are the SDK's public ones.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from bisect import bisect_left
from typing import Any

from ..errors import report_once

NAME = "http.server.request.duration"
DESCRIPTION = "Duration of HTTP server requests."
MAX_SERIES = 2000  # routes x methods x statuses of one app stay far below; a runaway is cut


class Durations:
    """The histogram's series: key -> [attributes, bucket counts, sum, count, min, max]."""

    def __init__(self, bounds: tuple[float, ...], delta: bool = False) -> None:
        self.bounds = bounds
        self.delta = delta  # the exporter prefers delta temporality (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE)
        self.reset()

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[Any, ...], list[Any]] = {}
        self.start = time.time_ns()

    def record(self, key: tuple[Any, ...], make_attributes: Any, seconds: float) -> None:
        index = bisect_left(self.bounds, seconds)  # buckets hold values up to their bound, inclusive
        with self._lock:
            entry = self._series.get(key)
            if entry is None:
                if len(self._series) >= MAX_SERIES:
                    report_once("duration_series", "flask-sigobs: more than %d series of %s; later ones are "
                                "not recorded", MAX_SERIES, NAME)
                    return
                entry = self._series[key] = [make_attributes(), [0] * (len(self.bounds) + 1), 0.0, 0,
                                             seconds, seconds]
            entry[1][index] += 1
            entry[2] += seconds
            entry[3] += 1
            if seconds < entry[4]:
                entry[4] = seconds
            if seconds > entry[5]:
                entry[5] = seconds

    def metric(self) -> Any:
        """The histogram as the SDK's ``Metric``, or None when nothing was recorded."""
        from opentelemetry.sdk.metrics.export import AggregationTemporality, Histogram, HistogramDataPoint, Metric

        now = time.time_ns()
        with self._lock:
            series = [(entry[0], list(entry[1]), entry[2], entry[3], entry[4], entry[5])
                      for entry in self._series.values()]
            start = self.start
            if self.delta:
                self._series = {}
                self.start = now
        if not series:
            return None
        points = [HistogramDataPoint(attributes=attributes, start_time_unix_nano=start, time_unix_nano=now,
                                     count=count, sum=total, bucket_counts=buckets, explicit_bounds=list(self.bounds),
                                     min=low, max=high)
                  for attributes, buckets, total, count, low, high in series]
        temporality = AggregationTemporality.DELTA if self.delta else AggregationTemporality.CUMULATIVE
        return Metric(name=NAME, description=DESCRIPTION, unit="s",
                      data=Histogram(data_points=points, aggregation_temporality=temporality))


def with_durations(metrics_data: Any, durations: Durations, resource: Any) -> Any:
    """``metrics_data`` with the histogram added to our scope (``flask_sigobs``) of our resource."""
    from opentelemetry.sdk.metrics.export import MetricsData, ResourceMetrics, ScopeMetrics
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    metric = durations.metric()
    if metric is None:
        return metrics_data
    resources = list(metrics_data.resource_metrics) if metrics_data is not None else []
    for index, resource_metrics in enumerate(resources):
        if resource_metrics.resource is not resource:  # the SDK's collection holds ours as it was given
            continue
        scopes = list(resource_metrics.scope_metrics)
        for position, scope in enumerate(scopes):
            if scope.scope.name == "flask_sigobs":
                scopes[position] = dataclasses.replace(scope, metrics=[*scope.metrics, metric])
                break
        else:
            scopes.append(ScopeMetrics(scope=InstrumentationScope("flask_sigobs"), metrics=[metric], schema_url=""))
        resources[index] = dataclasses.replace(resource_metrics, scope_metrics=scopes)
        return MetricsData(resource_metrics=resources)
    resources.append(ResourceMetrics(resource=resource, scope_metrics=[
        ScopeMetrics(scope=InstrumentationScope("flask_sigobs"), metrics=[metric], schema_url="")], schema_url=""))
    return MetricsData(resource_metrics=resources)


def reader(exporter: Any, durations: Durations, resource: Any) -> Any:
    """A ``PeriodicExportingMetricReader`` (``OTEL_METRIC_EXPORT_INTERVAL`` / ``_TIMEOUT``) that adds
    the durations to every collection it exports."""
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    class DurationsReader(PeriodicExportingMetricReader):
        def _receive_metrics(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> None:
            try:
                metrics_data = with_durations(metrics_data, durations, resource)
            except Exception as exc:
                report_once(("durations", type(exc)), "flask-sigobs could not add %s to the metrics: %r", NAME, exc)
            super()._receive_metrics(metrics_data, timeout_millis, **kwargs)

    return DurationsReader(exporter)
