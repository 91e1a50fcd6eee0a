"""Events as OTLP log records, the HTTP server metrics and the auth counters, against a real
OTLP/HTTP receiver on loopback (``tests.signal_servers.OtlpReceiver``), with both span sources;
span events switched off; and each worker of a preloaded gunicorn exporting its own series.
"""

from __future__ import annotations

import logging
import time

import pytest
from flask import Flask, current_app, request

from flask_sigobs import auth
from flask_sigobs.config import ConfigError, load
from flask_sigobs.outputs.metrics import DURATION_BUCKETS

from .servers import gunicorn, http_get, server_env
from .signal_servers import OtlpReceiver

LINE_ONLY = {"timestamp", "level", "event", "service.name", "trace_id", "span_id"}


def make_app(name: str) -> Flask:
    app = Flask(name)

    @app.route("/login", methods=["POST"])
    def login():
        user = request.form.get("username", "")
        if request.form.get("password") != "right":
            auth.login_failed.send(current_app._get_current_object(), user=user, reason="bad password",
                                   password=request.form.get("password"))
            logging.getLogger("shop.views").warning("failed login for %s", user)
            return "no", 401
        auth.login_succeeded.send(current_app._get_current_object(), user=user)
        return "yes"

    @app.route("/items/<int:item_id>")
    def item(item_id: int):
        return f"item {item_id}"

    @app.route("/boom")
    def boom():
        raise RuntimeError("boom")

    return app


@pytest.fixture
def receiver(monkeypatch):
    with OtlpReceiver() as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.base)
        monkeypatch.setenv("OTEL_BLRP_SCHEDULE_DELAY", "100")
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "60000")  # flushed by the test
        yield rx


def shut(observed) -> None:
    runtime = observed.sigobs.runtime(observed.app)
    if runtime.log_records is not None and runtime.log_records.owner == "flask-sigobs":
        runtime.log_records.provider.shutdown()
    if runtime.metrics is not None:
        runtime.metrics.shutdown()


def test_every_logged_event_is_a_log_record_with_the_lines_attributes_and_trace(observe, receiver):
    observed = observe(make_app("records"), SIGOBS_LOGS_EXPORTER="otlp")
    try:
        client = observed.client()
        assert client.post("/login", data={"username": "alice", "password": "hunter2-secret"}).status_code == 401
        assert client.get("/items/7").status_code == 200
        observed.sigobs.flush(observed.app)
        lines = observed.lines()
        records = receiver.logs
    finally:
        shut(observed)
    events = [line for line in lines if line["event"] in ("auth.login_failed", "flask.request_finished")]
    assert len(events) == 3
    for line in events:
        (record,) = [r for r in records if r.event_name == line["event"] and r.span_id == line["span_id"]] or [
            [(r.event_name, r.span_id) for r in records]]
        assert record.trace_id == line["trace_id"] and record.flags & 1
        assert record.body == line["event"] and record.severity_text == line["level"]
        assert record.severity_number == {"info": 9, "warning": 13}[line["level"]]
        assert record.resource["service.name"] == "records"
        assert record.attributes == {k: v for k, v in line.items() if k not in LINE_ONLY}
    failed = next(r for r in records if r.event_name == "auth.login_failed")
    assert failed.attributes["enduser.id"] == "alice" and failed.attributes["password"] == "[REDACTED]"
    assert b"hunter2-secret" not in bytes(receiver.raw)
    # The app's own stdlib line made in the request: a record too, with the request's trace.
    (own,) = [r for r in records if r.body == "failed login for alice"]
    assert own.event_name == "" and own.trace_id == failed.trace_id and own.severity_text == "warning"
    assert own.attributes.get("logger") == "shop.views" and own.attributes.get("request.id")
    # Nothing below the JSON lines' level: the records are their twins.
    assert {r.event_name for r in records if r.event_name} == {line["event"] for line in lines}


@pytest.mark.parametrize("span_source", ["signals"])
def test_log_records_are_off_by_default_and_configured_by_the_standard_variable(observe, receiver, monkeypatch):
    assert load(Flask("a")).logs_exporter == "none" and load(Flask("a")).metrics_exporter == "none"
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console,otlp")
    settings = load(Flask("b"))
    assert (settings.logs_exporter, settings.metrics_exporter) == ("otlp", "otlp")
    assert settings.sources["SIGOBS_LOGS_EXPORTER"] == "OTEL_LOGS_EXPORTER"
    app = Flask("c")
    app.config["SIGOBS_LOGS_EXPORTER"] = "none"  # the app's own key wins
    assert load(app).logs_exporter == "none"
    app.config["SIGOBS_METRICS_EXPORTER"] = "prometheus"
    with pytest.raises(ConfigError, match="SIGOBS_METRICS_EXPORTER"):
        load(app)
    monkeypatch.delenv("OTEL_LOGS_EXPORTER")
    monkeypatch.delenv("OTEL_METRICS_EXPORTER")
    observed = observe(make_app("quiet"))
    runtime = observed.sigobs.runtime(observed.app)
    assert runtime.outputs == () and runtime.http_metrics is None
    observed.client().get("/items/1")
    observed.sigobs.flush(observed.app)
    assert receiver.requests == {}


@pytest.mark.parametrize("span_source", ["signals"])
def test_span_events_can_be_switched_off_keeping_status_and_user(observe):
    observed = observe(make_app("no_events"), SIGOBS_SPAN_EVENTS="false")
    client = observed.client()
    client.post("/login", data={"username": "alice", "password": "right"})
    assert client.get("/boom").status_code == 500
    login, boom = observed.server_spans()
    assert login.events == () or list(login.events) == []
    assert login.attributes["enduser.id"] == "alice"
    assert boom.status.status_code.name == "ERROR"
    assert [event.name for event in boom.events] == ["exception"]  # the exception, not our events
    assert {line["event"] for line in observed.lines()} >= {"auth.login_succeeded", "flask.request_finished"}


#: What the standard instrumentation adds to its measurements besides the conventions' required set.
EXTRA = ("network.protocol.version", "server.address", "server.port", "network.protocol.name")


def series(rx: OtlpReceiver, metric: str) -> dict:
    return {tuple(sorted((k, v) for k, v in p.attributes.items() if k not in EXTRA)): p
            for p in rx.latest(metric).values()}


def test_http_server_metrics_and_auth_counters(observe, receiver, span_source):
    observed = observe(make_app("metered"), SIGOBS_METRICS_EXPORTER="otlp")
    try:
        client = observed.client()
        for _ in range(3):
            client.get("/items/7")
        client.post("/login", data={"username": "alice", "password": "nope"})
        client.post("/login", data={"username": "alice", "password": "right"})
        client.get("/boom")
        client.get("/missing")
        client.get("/health")  # excluded: not measured
        observed.sigobs.flush(observed.app)
        duration = series(receiver, "http.server.request.duration")
        active = series(receiver, "http.server.active_requests")
        counted = series(receiver, "sigobs.auth.events")
    finally:
        shut(observed)
    base = {"http.request.method": "GET", "url.scheme": "http"}

    def key(**attributes):
        return tuple(sorted({**base, **attributes}.items()))

    assert duration[key(**{"http.route": "/items/<int:item_id>", "http.response.status_code": 200})].value == 3
    assert duration[key(**{"http.route": "/boom", "http.response.status_code": 500, "error.type": "500"})].value == 1
    assert duration[key(**{"http.response.status_code": 404})].value == 1
    login = {**base, "http.request.method": "POST", "http.route": "/login"}
    assert duration[tuple(sorted({**login, "http.response.status_code": 401}.items()))].value == 1
    assert sum(p.value for p in duration.values()) == 7, "each request measured once, the excluded one not"
    point = next(iter(duration.values()))
    assert point.unit == "s" and tuple(point.bounds) == DURATION_BUCKETS
    assert all(p.value == 0 for p in active.values()) and active
    assert {k: p.value for k, p in counted.items()} == {
        (("event.name", "auth.login_failed"), ("outcome", "failure")): 1,
        (("event.name", "auth.login_succeeded"), ("outcome", "success")): 1}
    assert counted[next(iter(counted))].monotonic
    instances = {p.resource["service.instance.id"] for p in receiver.points}
    assert len(instances) == 1 and {p.resource["service.name"] for p in receiver.points} == {"metered"}


@pytest.mark.parametrize("preload", [False, True], ids=["imported-by-each-worker", "preload-then-fork"])
def test_each_gunicorn_worker_exports_its_own_series(tmp_path, preload):
    with OtlpReceiver() as rx:
        env = server_env(OTEL_EXPORTER_OTLP_ENDPOINT=rx.base, OTEL_METRICS_EXPORTER="otlp",
                         OTEL_METRIC_EXPORT_INTERVAL="300", SIGOBS_LOG_FILE=str(tmp_path / "app.log"))
        with gunicorn(tmp_path, env, workers=2, args=("--preload",) if preload else ()) as server:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(4) as pool:  # requests that overlap: both workers serve some
                pids = set(pool.map(lambda _: http_get(f"{server.base}/pid?sleep=0.2")[2], range(12)))
            assert len(pids) == 2
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                points = [p for p in rx.points if p.metric == "http.server.request.duration"
                          and p.attributes.get("http.route") == "/pid"]
                if len({p.resource["service.instance.id"] for p in points}) >= 2:
                    break
                time.sleep(0.2)
            assert server.terminate() == 0
        points = [p for p in rx.points if p.metric == "http.server.request.duration"]
        by_instance: dict[str, float] = {}
        for point in points:
            if point.attributes.get("http.route") == "/pid":
                by_instance[point.resource["service.instance.id"]] = point.value  # cumulative: the latest
    assert len(by_instance) == 2, by_instance  # two workers, two series; the master says nothing
    assert sum(by_instance.values()) >= len(pids)


def test_durations_buckets_hold_values_up_to_their_bound_and_delta_starts_afresh():
    from flask_sigobs.outputs.durations import Durations

    cumulative, delta = Durations(DURATION_BUCKETS), Durations(DURATION_BUCKETS, delta=True)
    for durations in (cumulative, delta):
        for seconds in (0.005, 0.0051, 10.0, 11.0):
            durations.record(("k",), lambda: {"http.route": "/"}, seconds)
    for durations in (cumulative, delta):
        (point,) = durations.metric().data.data_points
        assert point.bucket_counts[0] == 1 and point.bucket_counts[1] == 1  # 0.005 in the first, inclusive
        assert point.bucket_counts[-2] == 1 and point.bucket_counts[-1] == 1  # 10 in the last bound, 11 above
        assert (point.count, point.min, point.max) == (4, 0.005, 11.0)
        assert point.attributes == {"http.route": "/"} and len(point.bucket_counts) == len(DURATION_BUCKETS) + 1
    assert cumulative.metric().data.data_points[0].count == 4  # cumulative: still there
    assert delta.metric() is None  # delta: said once
    assert cumulative.metric().data.aggregation_temporality.name == "CUMULATIVE"
