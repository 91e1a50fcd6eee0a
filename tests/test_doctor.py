"""``sigobs doctor``: the words and the exit status, against real endpoints that work and that don't.

Each case runs the command as a user would (``python -m flask_sigobs doctor APP``, or ``flask --app
APP sigobs doctor``) in a fresh process whose only configuration is its environment. The working
endpoints are the Collector of the end-to-end test, in front of Jaeger (the test span is then
looked up in Jaeger); the others are a refused port, a black hole (a socket that accepts and
never answers), the other protocol's port, a wrong path, TLS spoken to a plain-text port and,
with a second Collector that speaks TLS only (its certificate from a CA made for the test by
trustme), plain text spoken to it and a certificate the exporter does not trust; and an OTLP/HTTP
server on loopback that answers as a backend refusing spans does (a partial success).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import ssl
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import trustme

from . import attach_support as support
from .e2e.stack import START_TIMEOUT, Stack, accepts_an_empty_export, clean_environ, find_jaeger, stopped_after
from .servers import Answers, BlackHole, OtlpGrpcSink, OtlpSink, refused_endpoint

APP = "tests.attach_apps:create_app"


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory):
    with support.otlp_receiver(tmp_path_factory.mktemp("doctor-receiver")) as stack:
        yield stack


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    with refused_endpoint() as url:
        yield urllib.parse.urlsplit(url).port


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    with BlackHole() as hole:
        yield urllib.parse.urlsplit(hole.endpoint).port


def doctor(app: str | None = APP, *args: str, command: list[str] | None = None, **env: str) -> tuple[int, str]:
    """Run ``sigobs doctor``; its exit status and its output (standard output then error)."""
    argv = command or [sys.executable, "-m", "flask_sigobs", "doctor", *([app] if app else []), *args]
    result = subprocess.run(argv, cwd=support.ROOT, env=support.clean_environ(**env), capture_output=True,
                            text=True, timeout=90)
    return result.returncode, result.stdout + result.stderr


def doctor_json(app: str = APP, *args: str, **env: str) -> tuple[int, dict[str, Any]]:
    code, output = doctor(app, "--json", *args, **env)
    return code, json.loads(output[:output.rindex("}") + 1])


def endpoint(stack: Stack, protocol: str, scheme: str = "http") -> dict[str, str]:
    """The exporter's variables for a Collector's port of ``protocol``."""
    port = stack.collector_http if protocol == "http/protobuf" else stack.collector_grpc
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"{scheme}://127.0.0.1:{port}", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}


def http_endpoint(receiver: Stack) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.collector_http}"}


#: What the doctor says of a test span a working endpoint took.
ACCEPTED = {"http/protobuf": "accepted (HTTP 200)", "grpc": "accepted (gRPC OK)"}


def line(output: str, start: str) -> str:
    found = [text for text in output.splitlines() if text.strip().startswith(start)]
    assert found, f"no line starting with {start!r} in:\n{output}"
    return found[0].strip()


def test_sample_failures_are_said_in_the_checks(receiver):
    """The text report: a PROBLEM line with its fix, and the verdict."""
    code, output = doctor(APP, "--timeout", "2", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert code == 1, output
    assert "PROBLEM  test span: test span to http://127.0.0.1:9/v1/traces (http/protobuf): connection refused" in output
    assert "fix: start the collector, or fix the host and port of OTEL_EXPORTER_OTLP_ENDPOINT" in output
    assert output.rstrip().endswith("Result: 1 problem will keep traces or logs from arriving.")


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_working_endpoint_accepts_the_test_span_and_jaeger_shows_it(receiver, protocol: str):
    env = endpoint(receiver, protocol)
    service = "doctor" + support.run_id()
    code, output = doctor(APP, SIGOBS_SERVICE_NAME=service, **env)
    assert code == 0, output
    test_span = line(output, "Test span:")
    assert test_span.startswith(f"Test span:       {ACCEPTED[protocol]} in "), test_span
    assert f"service {service})" in test_span
    assert line(output, "Exporter:").endswith(f"endpoint {env['OTEL_EXPORTER_OTLP_ENDPOINT']}"
                                             f"{'/v1/traces' if protocol == 'http/protobuf' else ''}, "
                                             f"protocol {protocol}")
    assert output.rstrip().endswith("Result: traces and logs will arrive.")
    trace_id = re.search(r"trace id ([0-9a-f]{32})", test_span).group(1)
    trace = support.wait_for("the test span in Jaeger", lambda: receiver.query.trace(trace_id), 30, interval=0.3)
    (span,) = trace["spans"]
    assert span["operationName"] == "sigobs doctor test span"
    assert trace["processes"][span["processID"]]["serviceName"] == service


FAILURES = {
    # name: (environment builder, expected outcome, words)
    "refused-http": (lambda r, port: {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"},
                     "refused", "connection refused: nothing listens on 127.0.0.1:{port}"),
    "refused-grpc": (lambda r, port: {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                                      "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
                     "refused", "connection refused: nothing listens on 127.0.0.1:{port}"),
    "black-hole-http": (lambda r, port: {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"},
                        "timed_out", "timed out after 1 s: 127.0.0.1:{port} accepted the connection but never "
                                     "answered"),
    "black-hole-grpc": (lambda r, port: {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                                         "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
                        "timed_out", "timed out after 1 s: 127.0.0.1:{port} accepted the connection but never "
                                     "answered"),
    "http-to-the-grpc-port": (lambda r, port: {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{r.collector_grpc}"},
                              "wrong_protocol", "wrong protocol: 127.0.0.1:{grpc} is a gRPC endpoint (HTTP/2), "
                                                "spoken to over OTLP/HTTP"),
    "grpc-to-the-http-port": (lambda r, port: {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{r.collector_http}",
                                               "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
                              "wrong_protocol", "wrong protocol: 127.0.0.1:{http} is an HTTP/1.1 endpoint "
                                                "(OTLP/HTTP?), spoken to over gRPC"),
    "wrong-path": (lambda r, port: {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{r.collector_http}/traces"},
                   "wrong_path", "HTTP 404 (wrong path): nothing at /traces on 127.0.0.1:{http}"),
    "tls-to-a-plain-http-port": (lambda r, port: {"OTEL_EXPORTER_OTLP_ENDPOINT": f"https://127.0.0.1:{r.collector_http}"},
                                 "tls", "TLS not expected: the exporter speaks TLS (https://) but 127.0.0.1:{http} "
                                        "answers in plain text"),
    "tls-to-a-plain-grpc-port": (lambda r, port: {"OTEL_EXPORTER_OTLP_ENDPOINT": f"https://127.0.0.1:{r.collector_grpc}",
                                                  "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
                                 "tls", "TLS not expected: the exporter speaks TLS but 127.0.0.1:{grpc} answers in "
                                        "plain text"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_an_endpoint_that_does_not_work_is_said_in_words(receiver, case: str):
    build, outcome, words = FAILURES[case]
    holder = black_hole() if case.startswith("black-hole") else refused_port()
    with holder as port:
        env = build(receiver, port)
        code, report = doctor_json(APP, "--timeout", "1", **env)
    assert code == 1
    assert report["ok"] is False
    (delivery,) = report["test_spans"]
    assert delivery["outcome"] == outcome
    expected = words.format(port=port, grpc=receiver.collector_grpc, http=receiver.collector_http)
    assert delivery["words"].startswith(expected), delivery["words"]
    assert delivery["fix"]
    assert any(p.startswith("test span to ") and expected in p for p in report["problems"]), report["problems"]
    if outcome == "timed_out":
        assert 0.9 <= delivery["seconds"] < 10


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_an_endpoint_that_takes_the_test_span_but_rejects_it_is_said_with_its_reason(protocol: str):
    """OTLP lets a backend answer success and still refuse spans (a partial success, with a count
    and a reason): the app's exporter then logs nothing, and the doctor is where a user learns why."""
    reason = "span timestamps are older than the retention window\x1b[2J"  # an escape code: shown, not obeyed
    sink: Any = OtlpGrpcSink(rejects=reason) if protocol == "grpc" else OtlpSink(rejects=reason)
    with sink:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"} \
            if protocol == "grpc" else {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink.endpoint}
        code, report = doctor_json(APP, "--timeout", "5", **env)
    assert sink.requests >= 1, "the test span reached the endpoint"
    assert code == 1 and report["ok"] is False
    (delivery,) = report["test_spans"]
    assert delivery["outcome"] == "rejected", delivery
    assert delivery["words"] == ("the collector took the request but rejected the span: span timestamps are "
                                 "older than the retention window\\x1b[2J")
    assert (delivery["grpc_code"] == "OK") if protocol == "grpc" else (delivery["http_status"] == 200)
    assert "log" in delivery["fix"]
    assert any("rejected the span" in problem for problem in report["problems"]), report["problems"]


def test_what_a_hostile_endpoint_puts_in_an_error_is_shown_not_obeyed():
    """An error the exporter raises can quote the server (here the status line it could not read):
    the doctor prints it bounded, on one line, its escape codes shown rather than sent to the terminal."""
    with Answers(b"\x1b[2J\x1b]0;owned\x07 not HTTP at all" + b"x" * 5000 + b"\r\n\r\n") as server:
        code, output = doctor(APP, "--timeout", "3", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=server.endpoint)
        _, report = doctor_json(APP, "--timeout", "3", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=server.endpoint)
    assert server.connections >= 2
    assert code == 1
    assert "\x1b" not in output and "\x07" not in output, "no control character reaches the terminal"
    (delivery,) = report["test_spans"]
    assert delivery["outcome"] == "error", delivery
    assert "\\x1b[2J" in delivery["words"] and "\\x07" in delivery["words"], delivery["words"]
    assert len(delivery["words"]) < 400, "bounded: the server's 5,000 characters are not all repeated"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_an_ipv6_endpoint_is_written_as_a_url_writes_it(protocol: str):
    with socket.socket(socket.AF_INET6) as reserved:  # bound, never listening: connections are refused
        reserved.bind(("::1", 0))
        port = reserved.getsockname()[1]
        code, report = doctor_json(APP, "--timeout", "2", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://[::1]:{port}",
                                   OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    assert code == 1
    (delivery,) = report["test_spans"]
    assert delivery["outcome"] == "refused"
    assert delivery["words"].startswith(f"connection refused: nothing listens on [::1]:{port}"), delivery


E2E = Path(__file__).resolve().parent / "e2e"


@contextlib.contextmanager
def collector(workdir: Path, config: Path, ready: Callable[[Stack], bool], **env: str) -> Iterator[Stack]:
    """A real Collector (Jaeger's binary) with a test's own ``config``, on free loopback ports,
    ready once ``ready(stack)`` says so; stopped on the way out."""
    jaeger, why_not = find_jaeger()
    if jaeger is None:
        pytest.skip(why_not)
    stack = Stack(jaeger, workdir)
    environ = clean_environ(SIGOBS_COLLECTOR_GRPC=f"127.0.0.1:{stack.collector_grpc}",
                            SIGOBS_COLLECTOR_HTTP=f"127.0.0.1:{stack.collector_http}", **env)
    with stopped_after(stack, config.name):
        stack.validate(config, environ)
        process = stack.start_process(config.stem, [jaeger, f"--config={config}"], environ)
        support.wait_for(f"the OTLP/HTTP receiver of {config.name}", lambda: ready(stack), START_TIMEOUT,
                         alive=process.check_alive)
        yield stack


@pytest.fixture(scope="module")
def tls_collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    """A Collector whose OTLP receivers speak TLS only, with a certificate for 127.0.0.1 from a CA
    of the test's own; the CA's certificate file beside it."""
    workdir = tmp_path_factory.mktemp("tls-collector")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = workdir / "ca.pem", workdir / "cert.pem", workdir / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server.cert_chain_pems[0].write_to_path(str(cert_file))
    server.private_key_pem.write_to_path(str(key_file))
    trusting = ssl.create_default_context(cafile=str(ca_file))
    with collector(workdir, E2E / "collector-tls.yaml",
                   lambda stack: accepts_an_empty_export(f"https://127.0.0.1:{stack.collector_http}/v1/traces",
                                                         context=trusting),
                   SIGOBS_TLS_CERT=str(cert_file), SIGOBS_TLS_KEY=str(key_file)) as stack:
        yield stack, ca_file


TLS_CASES = {
    # name: (environment, with {http}/{grpc} for the TLS Collector's ports, outcome, words)
    "plain-http-to-a-tls-port": ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:{http}"},
                                 "tls", "TLS expected: 127.0.0.1:{http} speaks TLS, the exporter sent plain HTTP "
                                        "(http://)"),
    "plain-grpc-to-a-tls-port": ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:{grpc}",
                                  "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
                                 "tls", "TLS expected: 127.0.0.1:{grpc} speaks TLS, the exporter connects in "
                                        "plain text"),
    "https-to-an-untrusted-certificate": ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://127.0.0.1:{http}"},
                                          "tls", "TLS: the certificate of 127.0.0.1:{http} is not trusted"),
    "grpc-tls-to-an-untrusted-certificate": ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://127.0.0.1:{grpc}",
                                              "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
                                             "tls", "TLS: the certificate of 127.0.0.1:{grpc} is not trusted"),
}


@pytest.mark.parametrize("case", list(TLS_CASES))
def test_a_collector_that_speaks_tls_and_an_exporter_that_disagrees(tls_collector, case: str):
    stack, _ = tls_collector
    env, outcome, words = TLS_CASES[case]
    ports = {"http": stack.collector_http, "grpc": stack.collector_grpc}
    code, report = doctor_json(APP, "--timeout", "5", **{k: v.format(**ports) for k, v in env.items()})
    assert code == 1
    (delivery,) = report["test_spans"]
    expected = words.format(**ports)
    assert (delivery["outcome"], delivery["words"][:len(expected)]) == (outcome, expected), delivery
    assert delivery["fix"]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_collector_that_speaks_tls_with_its_ca_given_accepts_the_test_span(tls_collector, protocol: str):
    """Even where ``REQUESTS_CA_BUNDLE`` is set (as on many machines), which requests lets replace
    the CA file the OTLP/HTTP exporter gives its session."""
    import certifi

    stack, ca_file = tls_collector
    code, output = doctor(APP, "--timeout", "5", **endpoint(stack, protocol, scheme="https"),
                          OTEL_EXPORTER_OTLP_CERTIFICATE=str(ca_file), REQUESTS_CA_BUNDLE=certifi.where())
    assert code == 0, output
    assert line(output, "Test span:").startswith(f"Test span:       {ACCEPTED[protocol]} in "), output


def test_a_ca_file_that_requests_replaces_is_said_for_an_exporter_the_app_built(tls_collector):
    """The app's own OTLP/HTTP exporter, given the CA file, on a machine with REQUESTS_CA_BUNDLE set:
    requests checks the certificate against that bundle instead, and the doctor says why."""
    import certifi
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if hasattr(OTLPSpanExporter(), "_session"):
        pytest.skip("SDK releases before 1.45 hand requests the CA file with each request: requests#3829 spares them")

    stack, ca_file = tls_collector
    code, report = doctor_json("tests.attach_apps:otel_at_import", "--timeout", "5",
                               OTEL_EXPORTER_OTLP_ENDPOINT=f"https://127.0.0.1:{stack.collector_http}",
                               OTEL_EXPORTER_OTLP_CERTIFICATE=str(ca_file), REQUESTS_CA_BUNDLE=certifi.where())
    assert code == 1
    (delivery,) = report["test_spans"]
    assert delivery["outcome"] == "tls"
    assert delivery["words"] == (f"TLS: the certificate of 127.0.0.1:{stack.collector_http} is not trusted: "
                                 "REQUESTS_CA_BUNDLE replaces the exporter's CA file (OTEL_EXPORTER_OTLP_CERTIFICATE) "
                                 "in requests, its HTTP client (psf/requests#3829)"), delivery
    assert delivery["fix"].startswith("unset REQUESTS_CA_BUNDLE for the app")


BASIC_USER, BASIC_PASSWORD = "sigobs", "s3cret-" + "doctor"


@pytest.fixture(scope="module")
def auth_collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A Collector whose OTLP receivers want HTTP basic credentials."""
    token = base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
    with collector(tmp_path_factory.mktemp("auth-collector"), E2E / "collector-auth.yaml",
                   lambda stack: accepts_an_empty_export(f"http://127.0.0.1:{stack.collector_http}/v1/traces",
                                                         {"Authorization": f"Basic {token}"}),
                   SIGOBS_COLLECTOR_USER=BASIC_USER, SIGOBS_COLLECTOR_PASSWORD=BASIC_PASSWORD) as stack:
        yield stack


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
@pytest.mark.parametrize("headers,words,fix", [
    (None, "the endpoint wants credentials", "set OTEL_EXPORTER_OTLP_HEADERS"),
    ("authorization=Basic%20" + base64.b64encode(b"sigobs:wrong").decode(),
     "the endpoint refused the credentials of OTEL_EXPORTER_OTLP_HEADERS",
     "check the values in OTEL_EXPORTER_OTLP_HEADERS"),
], ids=["none", "wrong"])
def test_a_collector_that_wants_credentials_and_does_not_get_them(auth_collector, protocol: str,
                                                                    headers: str | None, words: str, fix: str):
    env = endpoint(auth_collector, protocol)
    if headers is not None:
        env["OTEL_EXPORTER_OTLP_HEADERS"] = headers
    code, report = doctor_json(APP, "--timeout", "5", **env)
    assert code == 1
    (delivery,) = report["test_spans"]
    expected = ("HTTP 401 (unauthenticated): " if protocol == "http/protobuf" else "gRPC UNAUTHENTICATED: ") + words
    assert (delivery["outcome"], delivery["words"][:len(expected)]) == ("http_error", expected), delivery
    reason = "(no basic auth provided)" if headers is None else "(invalid credentials)"  # the Collector's own words
    assert delivery["words"].endswith(reason), delivery["words"]
    assert delivery["fix"].startswith(fix)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_collector_that_wants_credentials_accepts_them_from_the_headers_variable(auth_collector, protocol: str):
    """``OTEL_EXPORTER_OTLP_HEADERS`` (URL-encoded, as the specification has it) reaches the
    collector, and its value is not shown."""
    token = base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
    code, output = doctor(APP, "--timeout", "5", **endpoint(auth_collector, protocol),
                          OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Basic%20{token}")
    assert code == 0, output
    assert line(output, "Test span:").startswith(f"Test span:       {ACCEPTED[protocol]} in "), output
    assert token not in output and "OTEL_EXPORTER_OTLP_HEADERS=authorization=[REDACTED]" in output


@pytest.mark.parametrize("case,env,words", [
    ("no-endpoint", {}, "no endpoint configured: neither OTEL_EXPORTER_OTLP_ENDPOINT nor "
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set"),
    ("exporter-none", {"OTEL_TRACES_EXPORTER": "none"}, "OTEL_TRACES_EXPORTER=none: spans are not exported"),
    ("sampler-drops-all", {"OTEL_TRACES_SAMPLER": "always_off", "_endpoint": "1"},
     "the sampler always_off drops every new trace"),
    ("ratio-zero", {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0",
                    "_endpoint": "1"}, "the sampler parentbased_traceidratio(0.0) drops every new trace"),
    ("log-level-hides-the-events", {"SIGOBS_LOG_LEVEL": "warning", "_endpoint": "1"},
     "SIGOBS_LOG_LEVEL=warning hides the access lines"),
    ("excluded-paths-cover-every-route", {"SIGOBS_EXCLUDED_PATHS": "/*", "_endpoint": "1"},
     "SIGOBS_EXCLUDED_PATHS (/*) covers every route of the app (7)"),
    pytest.param("otel-excluded-urls-cover-every-route-of-our-instrumentation",
     {"SIGOBS_SPAN_SOURCE": "otel", "OTEL_PYTHON_FLASK_EXCLUDED_URLS": ".*", "_endpoint": "1"},
     "OTEL_PYTHON_FLASK_EXCLUDED_URLS (or OTEL_PYTHON_EXCLUDED_URLS) covers every route", marks=pytest.mark.otel),
    ("disabled-and-not-attached-by-the-app", {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "flask_sigobs",
                                              "_endpoint": "1"},
     "switches the auto-attach off: nothing will attach it"),
    ("invalid-setting", {"SIGOBS_LOG_LEVEL": "chatty", "_endpoint": "1"},
     "flask-sigobs cannot attach: ConfigError: SIGOBS_LOG_LEVEL must be one of"),
    ("sdk-disabled", {"OTEL_SDK_DISABLED": "true", "_endpoint": "1"}, "OTEL_SDK_DISABLED=true"),
])
def test_the_known_ways_to_see_nothing(receiver, case: str, env: dict[str, str], words: str):
    env = dict(env)
    if env.pop("_endpoint", None):
        env.update(http_endpoint(receiver))
    code, output = doctor(APP, **env)
    assert code == 1, output
    problems = [text.strip() for text in output.splitlines() if text.strip().startswith("PROBLEM")]
    assert any(words in problem for problem in problems), f"{words!r} not in {problems}\n{output}"
    assert "Result: " in output and "will keep traces or logs from arriving" in output


@pytest.mark.parametrize("factory,words", [
    pytest.param("twice_instrumented", "the app is instrumented 2 times (opentelemetry-instrumentation-flask, "
                 "opentelemetry-instrumentation-wsgi OpenTelemetryMiddleware)", marks=pytest.mark.otel),
    ("structlog_dropping", "structlog is configured by the app so that flask-sigobs's lines are filtered out: "
                           "its processor only_mine drops them"),
    ("structlog_warnings_only", "structlog is configured by the app so that flask-sigobs's lines are filtered "
                                "out: its wrapper class"),
])
def test_set_ups_of_the_app_itself_that_hide_the_output(receiver, factory: str, words: str):
    code, output = doctor(f"tests.attach_apps:{factory}", **http_endpoint(receiver))
    assert code == 1, output
    assert words in line(output, "PROBLEM"), output


def test_an_app_that_set_up_structlog_in_a_way_that_lets_lines_through(receiver):
    code, output = doctor("tests.attach_apps:structlog_passing", **http_endpoint(receiver))
    assert code == 0, output
    assert line(output, "structlog:").endswith("configured by the app")
    assert "ok       structlog: structlog is configured by the app: flask-sigobs's lines go through its pipeline" \
        in output


@pytest.mark.parametrize("protocol,preload,status,words", [
    ("http/protobuf", True, "ok", "the batch span processor is created at import by the app; under gunicorn "
                                  "--preload it restarts its export thread in each worker after the fork"),
    ("grpc", True, "PROBLEM", "a gRPC exporter is created at import by the app: with gunicorn --preload its "
                              "channel is opened before the fork"),
    ("grpc", False, "warning", "a gRPC exporter is created at import by the app"),
])
def test_opentelemetry_set_up_at_import_before_a_fork(receiver, protocol: str, preload: bool, status: str,
                                                     words: str):
    env = endpoint(receiver, protocol)
    if preload:
        env["GUNICORN_CMD_ARGS"] = "--preload --workers 4"
    code, output = doctor("tests.attach_apps:otel_at_import", **env)
    assert code == (1 if status == "PROBLEM" else 0), output
    fork = line(output, f"{status:<7}  fork:")
    assert words in fork, fork
    assert line(output, "OpenTelemetry:").startswith("OpenTelemetry:   set up by the app")


def test_the_configuration_with_where_each_value_comes_from(receiver):
    code, report = doctor_json("tests.attach_apps:with_config", SIGOBS_LOG_LEVEL="debug",
                               SIGOBS_LOG_FILE="/tmp/sigobs-doctor-test.jsonl", **http_endpoint(receiver))
    assert code == 0, report
    configuration = report["configuration"]
    assert configuration["SIGOBS_SERVICE_NAME"] == {"value": "configured-in-app", "source": "app.config"}
    assert configuration["SIGOBS_REDACT_KEYS"] == {"value": "card_number", "source": "app.config"}
    assert configuration["SIGOBS_LOG_LEVEL"] == {"value": "debug", "source": "environment"}
    assert configuration["SIGOBS_LOG_FORMAT"] == {"value": "json", "source": "default"}
    assert configuration["SIGOBS_REQUEST_ID_HEADER"] == {"value": "X-Request-ID", "source": "default"}
    assert report["logs"] == {"destination": "/tmp/sigobs-doctor-test.jsonl", "format": "json"}
    assert {"flask.request_started", "flask.request_finished", "auth.login_failed"} <= set(report["signals"])
    assert report["opentelemetry"]["set_up_by"] == "flask-sigobs"
    assert report["opentelemetry"]["service_name"] == "configured-in-app"
    assert report["structlog"]["configured_by"] == "flask-sigobs"
    (exporter,) = report["exporters"]
    assert exporter["kind"] == "otlp-http" and exporter["protocol"] == "http/protobuf"
    assert exporter["endpoint"] == f"http://127.0.0.1:{receiver.collector_http}/v1/traces"
    assert report["sampler"]["description"] == "parentbased_always_on"
    assert report["sampler"]["kept_share_of_new_traces"] == 1.0
    (delivery,) = report["test_spans"]
    assert delivery["outcome"] == "accepted" and delivery["http_status"] == 200
    assert report["ok"] is True and report["problems"] == []
    assert report["verdict"] == "traces and logs will arrive"
    checks = {finding["check"]: finding["status"] for finding in report["findings"]}
    assert checks["instrumented once"] == "ok" and checks["excluded paths"] == "ok"
    assert checks["log level"] == "ok" and checks["fork"] == "ok"


def test_an_app_that_calls_sigobs_itself(receiver):
    code, output = doctor("tests.attach_apps:with_sigobs", **http_endpoint(receiver))
    assert code == 0, output
    assert line(output, "Attached by:") == "Attached by:     the app's own code (SigObs(app) or init_app)"


def test_under_sigobs_run_the_doctor_says_so(receiver):
    command = [*support.LAUNCHERS["sigobs-run"], sys.executable, "-m", "flask_sigobs", "doctor", APP]
    code, output = doctor(command=command, **http_endpoint(receiver))
    assert code == 0, output
    assert "this process was started by `sigobs run`" in line(output, "ok       attach:")


def test_secrets_in_the_otel_variables_are_not_shown(receiver):
    secret = "s3cr3t-t0ken-for-doctor"
    env = {**http_endpoint(receiver), "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {secret},x-team=a"}
    code, output = doctor(APP, **env)
    assert code == 0, output
    assert secret not in output
    assert "OTEL_EXPORTER_OTLP_HEADERS=authorization=[REDACTED],x-team=[REDACTED]" in output
    code, report = doctor_json(APP, **env)
    assert secret not in json.dumps(report)


@pytest.mark.parametrize("reachable", [True, False])
def test_flask_app_sigobs_doctor(receiver, reachable: bool):
    with refused_port() as port:
        url = f"http://127.0.0.1:{receiver.collector_http if reachable else port}"
        command = [str(support.BIN / "flask"), "--app", "tests.attach_apps:create_app('via-flask')", "sigobs",
                   "doctor", "--timeout", "2"]
        code, output = doctor(command=command, OTEL_EXPORTER_OTLP_ENDPOINT=url)
    assert code == (0 if reachable else 1), output
    assert line(output, "flask-sigobs doctor:").startswith("flask-sigobs doctor: app 'via-flask'")
    assert (ACCEPTED["http/protobuf"] if reachable else "connection refused") in line(output, "Test span:")


def test_an_app_that_cannot_be_loaded(tmp_path: Path):
    code, output = doctor("tests.no_such_module:app")
    assert code == 2
    assert output.startswith("sigobs doctor: could not load the app:")
    code, output = doctor("tests.no_such_module:app", "--json")
    assert code == 2 and json.loads(output)["ok"] is False
