"""Shared fixtures: a real Flask app observed by flask-sigobs, its JSON lines and its spans.

Each app writes its JSON lines to its own file and exports its spans to the SDK's in-memory
exporter; :class:`Observed` reads both back. ``serve`` runs the app under a real threaded
server on a free loopback port.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
from flask import Flask
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from werkzeug.serving import make_server

from flask_sigobs import SigObs

from .extras import NO_OTEL


@dataclass
class Observed:
    app: Flask
    sigobs: SigObs
    exporter: InMemorySpanExporter
    log_path: Path
    _base: str | None = field(default=None)

    def raw_log(self) -> bytes:
        self.sigobs.flush(self.app)  # lines wait up to SIGOBS_LOG_FLUSH_INTERVAL to be written
        return self.log_path.read_bytes() if self.log_path.exists() else b""

    def lines(self) -> list[dict[str, Any]]:
        """Every line written, each parsed: a line that is not one JSON object fails the test."""
        out = []
        for raw in self.raw_log().splitlines():
            parsed = json.loads(raw)
            assert isinstance(parsed, dict), raw
            out.append(parsed)
        return out

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]

    def spans(self) -> list[Any]:
        self.sigobs.runtime(self.app).tracer_provider.force_flush()
        return list(self.exporter.get_finished_spans())

    def server_spans(self) -> list[Any]:
        from opentelemetry.trace import SpanKind

        return [span for span in self.spans() if span.kind == SpanKind.SERVER]

    def client(self) -> Any:
        return self.app.test_client()

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """The app under werkzeug's threaded server on 127.0.0.1:<free port>."""
        server = make_server("127.0.0.1", 0, self.app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            thread.join(5)


def http(url: str, method: str = "GET", data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture(autouse=True)
def _audit_trail_of_its_own(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test's apps keep their audit trail in a folder of the test's own (unless they name
    one): not in the checkout's instance folder, and no brute-force count carried over from another
    test's failed logins (tests/e2e/stack.py's ``audit_place`` does the same for servers)."""
    folder = tmp_path_factory.mktemp("audit")
    monkeypatch.setenv("SIGOBS_AUDIT_URL", f"sqlite:///{folder}/audit.db")
    monkeypatch.setenv("SIGOBS_AUDIT_JOURNAL", str(folder / "journal"))


@pytest.fixture(params=["signals", "otel"])
def span_source(request: pytest.FixtureRequest) -> str:
    """Each test that observes an app runs with both span sources, unless it names one (``otel``
    skips, saying why, where the [otel] extra is not installed)."""
    if request.param == "otel" and NO_OTEL:
        pytest.skip(NO_OTEL)
    return request.param


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``otel`` need the [otel] extra: skipped, saying why, where it is not installed."""
    if NO_OTEL:
        skip = pytest.mark.skip(reason=NO_OTEL)
        for item in items:
            if "otel" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def observe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, span_source: str):
    """``observe(app=None, **config)``: attach flask-sigobs to a real app writing to tmp files."""
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(key, raising=False)
    made: list[Observed] = []

    def make(app: Flask | None = None, sigobs: SigObs | None = None, **config: Any) -> Observed:
        app = app or Flask(f"test_app_{len(made)}")
        app.config["SECRET_KEY"] = app.config.get("SECRET_KEY") or "test-secret-key"
        exporter = InMemorySpanExporter()
        log_path = tmp_path / f"{app.name}-{len(made)}.log"
        app.config.update({"SIGOBS_SPAN_EXPORTER": exporter, "SIGOBS_LOG_FILE": str(log_path),
                           "SIGOBS_SPAN_SOURCE": span_source, **config})
        sigobs = sigobs or SigObs()
        sigobs.init_app(app)
        observed = Observed(app, sigobs, exporter, log_path)
        made.append(observed)
        return observed

    yield make
    for observed in made:
        observed.sigobs.runtime(observed.app).tracer_provider.shutdown()
