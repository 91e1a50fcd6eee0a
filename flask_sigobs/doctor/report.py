"""What the doctor found: one finding per check, what became of each test span, and the verdict.

Everything else fills a :class:`Report`; ``render`` says it in words, ``--json`` prints
:meth:`Report.as_dict`. The exit status follows :attr:`Report.ok`: any ``problem`` makes it 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


OK, WARNING, PROBLEM = "ok", "warning", "problem"


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
