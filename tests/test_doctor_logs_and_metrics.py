"""``sigobs doctor`` on the log record and metrics exporters: off, on and working, a Collector
without a logs pipeline (404 on ``/v1/logs``), and nothing listening: each said in words, with a fix."""

from __future__ import annotations

import pytest

from .servers import refused_endpoint
from .signal_servers import OtlpReceiver
from .test_doctor import doctor_json

ON = {"OTEL_LOGS_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_TRACES_EXPORTER": "none"}


def findings(report: dict) -> dict[str, dict]:
    return {finding["check"]: finding for finding in report["findings"]}


def test_off_by_default_and_said_so():
    with OtlpReceiver() as rx:
        code, report = doctor_json(OTEL_EXPORTER_OTLP_ENDPOINT=rx.base, OTEL_TRACES_EXPORTER="none")
    found = findings(report)
    assert found["logs exporter"]["status"] == "ok" and "log records are off" in found["logs exporter"]["words"]
    assert "metrics are off" in found["metrics exporter"]["words"]
    assert "test log" not in found and "test metric" not in found


def test_a_working_collector_takes_the_test_record_and_metric():
    with OtlpReceiver() as rx:
        code, report = doctor_json(OTEL_EXPORTER_OTLP_ENDPOINT=rx.base, **ON)
        received, metric_requests = {r.event_name for r in rx.logs}, rx.requests.get("/v1/metrics", 0)
    found = findings(report)
    assert found["test log"]["status"] == "ok" and "accepted (HTTP 200)" in found["test log"]["words"]
    assert found["test metric"]["status"] == "ok" and f"{rx.base}/v1/metrics" in found["test metric"]["words"]
    assert "sigobs.doctor.test" in received and metric_requests >= 1


@pytest.mark.parametrize("case", ["404 on /v1/logs", "refused"])
def test_a_collector_without_logs_or_nothing_listening_is_said_with_a_fix(case: str):
    if case == "refused":
        with refused_endpoint() as url:
            code, report = doctor_json("tests.attach_apps:create_app", "--timeout", "1",
                                       OTEL_EXPORTER_OTLP_ENDPOINT=url.rsplit("/v1/", 1)[0], **ON)
    else:
        with OtlpReceiver(refuse={"/v1/logs": 404}) as rx:
            code, report = doctor_json(OTEL_EXPORTER_OTLP_ENDPOINT=rx.base, **ON)
    found = findings(report)
    logs = found["test log"]
    assert code == 1 and logs["status"] == "problem" and logs["fix"]
    if case == "refused":
        assert "connection refused: nothing listens on 127.0.0.1:" in logs["words"]
        assert found["test metric"]["status"] == "problem"
    else:
        assert "HTTP 404 (wrong path): nothing at /v1/logs" in logs["words"] and "logs pipeline" in logs["fix"]
        assert found["test metric"]["status"] == "ok"
