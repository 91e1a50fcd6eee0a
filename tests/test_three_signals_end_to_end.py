"""End to end, all three signals: traces to Jaeger, metrics to Prometheus, log records to VictoriaLogs.

    ./scripts/test tests/test_three_signals_end_to_end.py

The example app runs under gunicorn with two workers, its log records and metrics switched on by
the standard variables (``OTEL_LOGS_EXPORTER=otlp``, ``OTEL_METRICS_EXPORTER=otlp``), sending all
three signals over OTLP/HTTP to one Collector running the repo's ``otel-collector.yaml``
unchanged. The Collector sends the spans to Jaeger (``deploy/jaeger.yaml``, its Monitor tab backed
by a real Prometheus), the metrics (the app's own and the span metrics of the ``spanmetrics``
connector) to its ``prometheus`` exporter, which Prometheus scrapes, and the log records to
VictoriaLogs over OTLP/HTTP. The tour of ``test_end_to_end_jaeger`` is driven twice (a rate needs
two samples), and every check reads through each store's own query API.
"""

from __future__ import annotations

import http.cookiejar
import json
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from .e2e.stack import NoRedirect, Stack, StackError, find_jaeger, find_prometheus, find_victorialogs, \
    http_request, stopped_after, wait_for
from .test_end_to_end_jaeger import API_TOKEN, FAILING, PASSWORDS, SERVICE, TOUR, Sent, send

SIGNALS_TIMEOUT = 90.0  # seconds for every signal to be queryable
TOUR_ROUTES = {"/", "/login", "/admin", "/logout", "/api/items/<int:item_id>", "/api/reports/<int:year>"}
APP_ENV = {"OTEL_LOGS_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_METRIC_EXPORT_INTERVAL": "1000",
           "OTEL_BLRP_SCHEDULE_DELAY": "500"}


@dataclass
class Run:
    stack: Stack
    tours: list[list[Sent]]
    session_cookies: list[str]
    log_lines: list[dict[str, Any]]
    calls: dict[str, list[float]]  # operation -> its call rate points (Jaeger's metrics API)
    errors: dict[str, list[float]]  # operation -> its error rate points
    records: list[dict[str, Any]]  # every log record VictoriaLogs returns
    duration_series: list[dict[str, str]]  # the labels of each http_server_request_duration_seconds_bucket series
    returned: list[bytes]  # every body VictoriaLogs and Prometheus returned


def drive_tour(stack: Stack) -> tuple[list[Sent], set[str]]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    sent, cookies = [], set()
    for step in TOUR:
        sent.append(send(opener, stack.app_url, step.title, step.method, step.path, step.form, step.headers))
        cookies |= {cookie.value for cookie in jar if cookie.value}
    return sent, cookies


def get_json(url: str, returned: list[bytes], **params: Any) -> Any:
    status, _, body = http_request(url + "?" + urllib.parse.urlencode(params))
    returned.append(body)
    if status != 200:
        raise StackError(f"GET {url} -> {status}: {body[:300]!r}")
    return json.loads(body)


def jaeger_rates(stack: Stack, kind: str) -> dict[str, list[float]]:
    """Jaeger's metrics API (the Monitor tab's): ``calls`` or ``errors`` per operation, per minute."""
    now_ms = int(time.time() * 1000)
    found = stack.query.get(f"/api/metrics/{kind}", service=SERVICE, endTs=now_ms, lookback=120_000, step=1000,
                            ratePer=60_000, groupByOperation="true") or {}
    rates: dict[str, list[float]] = {}
    for metric in found.get("metrics") or []:
        labels = {label["name"]: label["value"] for label in metric.get("labels") or []}
        values = [point.get("gaugeValue", {}).get("doubleValue") for point in metric.get("metricPoints") or []]
        rates[labels.get("operation", "?")] = [v for v in values if isinstance(v, (int, float))]
    return rates


def victorialogs_records(stack: Stack, returned: list[bytes]) -> list[dict[str, Any]]:
    status, _, body = http_request(stack.victorialogs_url + "/select/logsql/query?" + urllib.parse.urlencode(
        {"query": "*", "limit": "10000"}))
    returned.append(body)
    if status != 200:
        raise StackError(f"VictoriaLogs query -> {status}: {body[:300]!r}")
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


def duration_series(stack: Stack, returned: list[bytes]) -> list[dict[str, str]]:
    found = get_json(stack.prometheus_url + "/api/v1/series", returned,
                     **{"match[]": "http_server_request_duration_seconds_bucket"})
    return found.get("data") or []


def instance_of(labels: dict[str, str]) -> str | None:
    """The worker's ``service.instance.id``: Prometheus renames the exporter's ``instance`` to
    ``exported_instance`` when it scrapes without ``honor_labels``."""
    return labels.get("exported_instance") or labels.get("instance")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    for finder in (find_jaeger, find_prometheus, find_victorialogs):
        binary, why_not = finder()
        if binary is None:
            pytest.skip(why_not)
    jaeger, _ = find_jaeger()
    prometheus, _ = find_prometheus()
    victorialogs, _ = find_victorialogs()
    stack = Stack(jaeger, tmp_path_factory.mktemp("three-signals"), app_env=dict(APP_ENV))  # type: ignore[arg-type]
    with stopped_after(stack, "the three-signal stack"):
        stack.start_victorialogs(victorialogs)  # type: ignore[arg-type]
        stack.start_prometheus(prometheus)  # type: ignore[arg-type]
        stack.start_jaeger()
        stack.start_collector()
        stack.start_app()
        returned: list[bytes] = []
        first, cookies = drive_tour(stack)
        stack.request_on_every_worker("/api/items/1")  # each worker measures the same route
        # A rate needs the counter to grow between two samples: a second tour once the first is scraped.
        wait_for("the first tour's span metrics in Prometheus", lambda: get_json(
            stack.prometheus_url + "/api/v1/query", returned,
            query=f'traces_span_metrics_calls_total{{service_name="{SERVICE}"}}')["data"]["result"],
            SIGNALS_TIMEOUT, interval=0.5)
        time.sleep(2.5)  # one more span metrics flush (2 s) and scrapes (1 s) of the same counts
        second, more = drive_tour(stack)
        stack.request_on_every_worker("/api/items/1")
        cookies |= more

        def rates_there() -> bool:
            calls, errors = jaeger_rates(stack, "calls"), jaeger_rates(stack, "errors")
            failing = [op for op in errors if FAILING.path.split("/2026")[0] in op]
            return len([op for op, points in calls.items() if any(p > 0 for p in points)]) >= len(TOUR_ROUTES) \
                and any(any(p > 0 for p in errors[op]) for op in failing)

        def record_there() -> bool:
            records = victorialogs_records(stack, [])
            return len([r for r in records if r.get("event_name") == "auth.login_failed"]) >= 2  # one a tour

        def both_workers() -> bool:
            series = duration_series(stack, [])
            return len({instance_of(s) for s in series if s.get("http_route") == "/api/items/<int:item_id>"}) >= 2 \
                and TOUR_ROUTES <= {s.get("http_route") for s in series}

        for what, probe in (("call and error rates in Jaeger's metrics API", rates_there),
                            ("both tours' auth.login_failed records in VictoriaLogs", record_there),
                            ("both workers' duration series in Prometheus", both_workers)):
            try:
                wait_for(what, probe, SIGNALS_TIMEOUT, interval=1.0)
            except StackError:
                pass  # the tests say what is missing
        stack.query.bodies.clear()
        calls, errors = jaeger_rates(stack, "calls"), jaeger_rates(stack, "errors")
        returned += stack.query.bodies
        return Run(stack, [first, second], sorted(cookies), stack.log_lines(), calls, errors,
                   victorialogs_records(stack, returned), duration_series(stack, returned), returned)


# -- traces -> span metrics -> Prometheus -> Jaeger's Monitor tab -------------------------------

def test_jaeger_monitor_tab_has_call_rates_for_the_tour_operations(run: Run):
    moving = {op for op, points in run.calls.items() if any(p > 0 for p in points)}
    for route in TOUR_ROUTES:
        assert any(op.endswith(" " + route) for op in moving), (route, sorted(run.calls))


def test_jaeger_monitor_tab_has_the_error_rate_of_the_failing_route(run: Run):
    failing = {op: points for op, points in run.errors.items() if op.endswith("/api/reports/<int:year>")}
    assert failing and any(p > 0 for points in failing.values() for p in points), run.errors
    succeeding = [points for op, points in run.errors.items() if op.endswith("/api/items/<int:item_id>")]
    assert all(p == 0 for points in succeeding for p in points), run.errors


# -- log records -> VictoriaLogs ----------------------------------------------------------------

def test_victorialogs_has_the_failed_login_with_the_json_lines_trace_id(run: Run):
    lines = [line for line in run.log_lines if line.get("event") == "auth.login_failed"]
    assert len(lines) == 2, "one failed login per tour, in the JSON lines"
    records = [r for r in run.records if r.get("event_name") == "auth.login_failed"]
    assert sorted(r.get("trace_id") for r in records) == sorted(line["trace_id"] for line in lines), records
    for record in records:
        assert record.get("enduser.id") == "alice" and record.get("reason") == "bad password", record
        assert record.get("service.name") == SERVICE, record
        assert record.get("span_id") in {line["span_id"] for line in lines}, record


def test_victorialogs_has_every_logged_event_of_the_tour(run: Run):
    logged = {line["event"] for line in run.log_lines if line.get("event")}
    recorded = {r.get("event_name") for r in run.records if r.get("event_name")}
    for name in ("auth.login_failed", "auth.login_succeeded", "auth.logged_out", "auth.access_denied",
                 "flask.request_finished", "flask.got_request_exception"):
        assert name in logged and name in recorded, (name, sorted(recorded))


def test_no_secret_in_anything_the_stores_returned(run: Run):
    assert run.returned and run.records
    everything = b"\n".join(run.returned)
    for secret in (*PASSWORDS, API_TOKEN, *run.session_cookies):
        assert secret.encode() not in everything, f"{secret[:4]}... reached a store"


# -- the app's own metrics -> Prometheus --------------------------------------------------------

def test_prometheus_has_duration_series_per_route_from_both_workers(run: Run):
    routes = {s.get("http_route") for s in run.duration_series}
    assert TOUR_ROUTES <= routes, sorted(r for r in routes if r)
    workers = {instance_of(s) for s in run.duration_series if s.get("http_route") == "/api/items/<int:item_id>"}
    assert len(workers) == 2, f"{len(workers)} instances: {workers}"
    statuses = {(s.get("http_route"), s.get("http_response_status_code")) for s in run.duration_series}
    assert ("/api/reports/<int:year>", "500") in statuses and ("/login", "401") in statuses, statuses
    failing = [s for s in run.duration_series if s.get("http_route") == "/api/reports/<int:year>"]
    assert all(s.get("error_type") == "500" for s in failing), failing
    assert all(s.get("job") == SERVICE or s.get("exported_job") == SERVICE for s in run.duration_series)
