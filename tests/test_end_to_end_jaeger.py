"""End to end: the example app under gunicorn, through the repo's Collector config, into Jaeger.

    ./scripts/test tests/test_end_to_end_jaeger.py

One Jaeger v2 binary (built by ``scripts/build-jaeger``) runs twice: as the Collector, with the
repo's ``otel-collector.yaml`` unchanged, and as Jaeger, with in-memory storage and its query
API (``deploy/jaeger.yaml``). The example app runs under gunicorn with two workers,
sending OTLP/HTTP to the Collector and writing its JSON lines to a file. The module fixture
drives the tour, waits (bounded) for every trace to be queryable, stops gunicorn gracefully,
reads back everything Jaeger returns, and stops every process; the tests then check what
arrived, through Jaeger's HTTP query API only. All of it runs once per variant (``VARIANTS``):
the app imported by each worker, the app preloaded before the fork (both with flask-sigobs's
default span source, the signals), and the span made by opentelemetry-instrumentation-flask
(``SIGOBS_SPAN_SOURCE=otel``).
"""

from __future__ import annotations

import http.cookiejar
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import pytest

from .e2e.stack import NoRedirect, Stack, StackError, find_jaeger, running_stack, wait_for

pytestmark = pytest.mark.slow  # end to end (Jaeger, the Collector, gunicorn): the whole suite's, not the matrix rows' core

SERVICE = "sigobs-example"  # the example app's SIGOBS_SERVICE_NAME
TRACES_TIMEOUT = 60.0  # seconds for every trace to be queryable in Jaeger
API_TOKEN = f"tour-token-{secrets.token_hex(8)}"  # sent by the tour; must never reach Jaeger
PASSWORDS = ("guess123", "wonderland")


@dataclass
class Step:
    title: str
    method: str
    path: str
    status: int
    form: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # event name -> attributes that event must carry on the request's server span
    events: dict[str, dict[str, Any]] = field(default_factory=dict)


TOUR = [
    Step("a page with a template", "GET", "/", 200, events={
        "flask.template_rendered": {"template.name": "index.html"},
    }),
    Step("a failed login (template and flash)", "POST", "/login", 401,
         form={"username": "alice", "password": "guess123"}, events={
             "auth.login_failed": {"enduser.id": "alice", "reason": "bad password"},
             "flask.message_flashed": {"flask.flash.category": "error"},
             "flask.template_rendered": {"template.name": "login.html"},
         }),
    Step("a successful login (flash, redirect)", "POST", "/login", 302,
         form={"username": "alice", "password": "wonderland"}, events={
             "auth.login_succeeded": {"enduser.id": "alice", "method": "password"},
             "flask.message_flashed": {"flask.flash.category": "success"},
         }),
    Step("the page showing the flash", "GET", "/", 200, events={
        "flask.template_rendered": {"template.name": "index.html"},
    }),
    Step("an API call that sends the custom signal", "GET", f"/api/items/2?access_token={API_TOKEN}", 200,
         headers={"Authorization": f"Bearer {API_TOKEN}"}, events={
             "shop.item_viewed": {"item_id": 2, "name": "lantern"},
         }),
    Step("access denied to a non-admin", "GET", "/admin", 403, events={
        "auth.access_denied": {"enduser.id": "alice", "permission": "admin"},
    }),
    Step("a route that raises", "GET", "/api/reports/2026", 500, events={
        "flask.got_request_exception": {"exception.type": "RuntimeError",
                                        "exception.message": "report generator crashed for 2026"},
    }),
    Step("logout", "POST", "/logout", 302, events={
        "auth.logged_out": {"enduser.id": "alice"},
    }),
]
AUTH_STEPS = [step for step in TOUR if any(name.startswith("auth.") for name in step.events)]
FAILING = TOUR[6]
REQUIRED_EVENTS = {"flask.request_started", "flask.request_finished", "flask.template_rendered",
                   "flask.message_flashed", "auth.login_succeeded", "auth.login_failed",
                   "auth.logged_out", "shop.item_viewed"}


@dataclass
class Sent:
    """One request the test made, as the client saw it."""

    title: str
    method: str
    path: str
    status: int
    request_id: str


@dataclass
class Run:
    """Everything the end-to-end run produced, read back before the processes were stopped."""

    stack: Stack
    tour: list[Sent]
    per_worker: list[Sent]  # one request served by each gunicorn worker
    last: Sent  # sent just before gunicorn was stopped
    served_by: dict[str, int]  # request id -> gunicorn worker pid
    gunicorn_exit: int | None
    services: list[str]
    while_running: list[dict[str, Any]]  # Jaeger's search for the service, before gunicorn stopped
    traces: list[dict[str, Any]]  # Jaeger's search for the service, at the end
    by_id: dict[str, dict[str, Any] | None]  # /api/traces/{id} for each trace id seen anywhere
    log_lines: list[dict[str, Any]]
    session_cookies: list[str]
    jaeger_bodies: list[bytes]
    raw_log: bytes

    @property
    def requests(self) -> list[Sent]:
        return [*self.tour, *self.per_worker, self.last]

    def trace_of(self, sent: Sent) -> dict[str, Any]:
        """The one trace whose server span carries this request's id."""
        found = [trace for trace in self.traces if sent.request_id in request_ids(trace)]
        assert len(found) == 1, f"{sent.title} ({sent.request_id}): {len(found)} traces in Jaeger"
        return found[0]

    def server_span(self, sent: Sent) -> dict[str, Any]:
        return server_span(self.trace_of(sent))


# -- reading Jaeger's JSON (api v1 / "api/traces") ------------------------------------------

def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


def events(span: dict[str, Any]) -> list[dict[str, Any]]:
    """Span events, as Jaeger returns them: span logs whose ``event`` field is the name."""
    return [{field["key"]: field["value"] for field in log["fields"]} for log in span.get("logs", [])]


def events_named(span: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [event for event in events(span) if event.get("event") == name]


def server_spans(trace: dict[str, Any]) -> list[dict[str, Any]]:
    return [span for span in trace["spans"] if tags(span).get("span.kind") == "server"]


def server_span(trace: dict[str, Any]) -> dict[str, Any]:
    spans = server_spans(trace)
    assert len(spans) == 1, f"trace {trace['traceID']}: {len(spans)} server spans"
    return spans[0]


def request_ids(trace: dict[str, Any]) -> set[str]:
    return {event["request.id"] for span in server_spans(trace) for event in events(span)
            if "request.id" in event}


def hex_id(value: str, width: int) -> str:
    """Jaeger's v1 API may drop leading zeros of an id; the logs always write them."""
    return value.lower().rjust(width, "0")


def service_of(trace: dict[str, Any], span: dict[str, Any]) -> str:
    return trace["processes"][span["processID"]]["serviceName"]


# -- driving the app ------------------------------------------------------------------------

def send(opener: urllib.request.OpenerDirector, base: str, title: str, method: str, path: str,
         form: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Sent:
    data = urllib.parse.urlencode(form).encode() if form else (b"" if method == "POST" else None)
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"User-Agent": "sigobs-e2e/1.0", **(headers or {})})
    try:
        with opener.open(request, timeout=30) as response:
            status, response_headers = response.status, response.headers
            response.read()
    except urllib.error.HTTPError as error:
        status, response_headers = error.code, error.headers
        error.read()
    request_id = response_headers.get("X-Request-ID")
    assert request_id, f"{title}: {method} {path} -> {status} without an X-Request-ID header"
    return Sent(title, method, path, status, request_id)


def one_request_per_worker(stack: Stack) -> list[Sent]:
    """The same API call on each gunicorn worker, so each worker has spans to export."""
    sent = []
    for number, (status, headers) in enumerate(stack.request_on_every_worker("/api/items/1")):
        request_id = headers.get("X-Request-ID")
        assert request_id, f"GET /api/items/1 -> {status} without an X-Request-ID header"
        sent.append(Sent(f"worker request {number}", "GET", "/api/items/1", status, request_id))
    return sent


def wait_for_traces(stack: Stack, sent: list[Sent], since_us: int,
                    timeout: float = TRACES_TIMEOUT) -> list[dict[str, Any]]:
    """Poll Jaeger's search until a trace for every request is there; what is there at the end."""
    wanted = {s.request_id for s in sent}
    latest: list[dict[str, Any]] = []

    def all_there() -> bool:
        nonlocal latest
        latest = stack.query.search(SERVICE, since_us)
        found = set().union(*(request_ids(trace) for trace in latest)) if latest else set()
        return wanted <= found

    try:
        wait_for(f"{len(wanted)} traces of {SERVICE} in Jaeger", all_there, timeout, interval=0.5)
    except StackError:
        pass  # the tests say what is missing
    return latest


#: The ways the app is run: (id, gunicorn --preload, more environment for the app).
VARIANTS = [
    ("app-imported-by-each-worker", False, {}),
    ("preload-then-fork", True, {}),  # the exporter is created in the master, used in the workers
    ("span-source-otel", False, {"SIGOBS_SPAN_SOURCE": "otel"}),  # the instrumentation's span, not ours
]


@pytest.fixture(scope="module", params=VARIANTS, ids=[variant[0] for variant in VARIANTS])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The whole run, once per variant: the stack up, the tour, everything read back, all stopped."""
    jaeger, why_not = find_jaeger()
    if jaeger is None:
        pytest.skip(why_not)
    name, preload, app_env = request.param
    workdir = tmp_path_factory.mktemp(f"e2e-{name}")
    since_us = int(time.time() * 1e6) - 60_000_000
    with running_stack(jaeger, workdir, preload, app_env) as stack:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
        tour, session_cookies = [], set()
        for step in TOUR:
            tour.append(send(opener, stack.app_url, step.title, step.method, step.path, step.form,
                             step.headers))
            session_cookies |= {cookie.value for cookie in jar if cookie.value}
        extra = one_request_per_worker(stack)
        # While the app runs: its workers export in the background after the fork.
        running = wait_for_traces(stack, [*tour, *extra], since_us)
        # One more request, then a graceful stop: what a worker still holds is flushed at exit.
        last = send(urllib.request.build_opener(NoRedirect), stack.app_url,
                    "the last request before shutdown", "GET", "/api/items/3")
        gunicorn = next(p for p in stack.processes if p.name == "gunicorn")
        gunicorn_exit = gunicorn.stop()
        traces = wait_for_traces(stack, [*tour, *extra, last], since_us, timeout=30)
        log_lines = stack.log_lines()
        trace_ids = {hex_id(t["traceID"], 32) for t in traces}
        trace_ids |= {line["trace_id"] for line in log_lines if line.get("trace_id")}
        by_id = {trace_id: stack.query.trace(trace_id) for trace_id in sorted(trace_ids)}
        for trace_id in sorted(trace_ids):
            stack.query.trace_v3(trace_id)  # the OTLP-shaped API too, for the secrets check
        services = stack.query.services()
        for service in services:
            stack.query.get(f"/api/services/{urllib.parse.quote(service)}/operations")
        return Run(stack, tour, extra, last, stack.worker_of_request(), gunicorn_exit, services,
                   running, traces, by_id, log_lines, sorted(session_cookies), list(stack.query.bodies),
                   stack.app_log.read_bytes())


# -- the checks -----------------------------------------------------------------------------

def test_the_tour_got_the_expected_responses(run: Run):
    assert [(s.method, s.path, s.status) for s in run.tour] == \
        [(step.method, step.path, step.status) for step in TOUR]
    assert all(s.status == 200 for s in [*run.per_worker, run.last])


def test_the_service_is_listed_under_its_configured_name(run: Run):
    assert SERVICE in run.services
    # Jaeger's and the Collector's own spans stay out: the app is the only service.
    assert run.services == [SERVICE]


def test_one_trace_per_request(run: Run):
    ids = [s.request_id for s in run.requests]
    assert len(set(ids)) == len(ids), "request ids are unique"
    missing = [f"{s.title}: {s.method} {s.path}" for s in run.requests
               if not any(s.request_id in request_ids(t) for t in run.traces)]
    assert not missing, f"{len(missing)} of {len(ids)} requests have no trace in Jaeger: {missing}\n" \
                        f"{run.stack.outputs()}"
    for sent in run.requests:
        trace = run.trace_of(sent)
        span = server_span(trace)
        assert request_ids(trace) == {sent.request_id}, "one request per trace"
        assert service_of(trace, span) == SERVICE
        assert tags(span)["http.request.method"] == sent.method
        assert tags(span)["url.path"] == urllib.parse.urlsplit(sent.path).path
        assert tags(span)["http.response.status_code"] == sent.status
    assert len(run.traces) == len(run.requests), "no trace other than the requests' own"


def test_both_gunicorn_workers_exported_their_spans(run: Run):
    pids = [run.served_by.get(s.request_id) for s in run.per_worker]
    assert None not in pids and len(set(pids)) == run.stack.workers, f"served by pids {pids}"
    for sent in run.per_worker:
        span = run.server_span(sent)  # its trace, from that worker, is in Jaeger
        assert [e["item_id"] for e in events_named(span, "shop.item_viewed")] == [1]


def test_spans_are_exported_while_the_app_runs(run: Run):
    """Not only at exit: the workers' background export works after the fork."""
    arrived = set().union(*(request_ids(trace) for trace in run.while_running))
    missing = [s.title for s in [*run.tour, *run.per_worker] if s.request_id not in arrived]
    assert not missing, f"no trace within {TRACES_TIMEOUT:.0f}s while gunicorn ran: {missing}"


def test_spans_still_held_at_shutdown_are_flushed(run: Run):
    assert run.gunicorn_exit == 0, run.stack.outputs()
    span = run.server_span(run.last)
    assert [e["item_id"] for e in events_named(span, "shop.item_viewed")] == [3]


def test_every_server_span_carries_request_started_and_finished(run: Run):
    for sent in run.requests:
        span = run.server_span(sent)
        names = [event["event"] for event in events(span)]
        assert names.count("flask.request_started") == 1, (sent.title, names)
        assert names.count("flask.request_finished") == 1, (sent.title, names)
        (finished,) = events_named(span, "flask.request_finished")
        assert finished["request.id"] == sent.request_id
        # what the span carries itself, its events need not repeat
        span_tags = tags(span)
        assert finished.get("http.response.status_code", span_tags.get("http.response.status_code")) \
            == sent.status
        assert finished.get("http.request.method", span_tags.get("http.request.method")) == sent.method


@pytest.mark.parametrize("index", range(len(TOUR)), ids=[step.title for step in TOUR])
def test_each_tour_request_has_its_signal_events_on_its_server_span(run: Run, index: int):
    step, sent = TOUR[index], run.tour[index]
    span = run.server_span(sent)
    for name, expected in step.events.items():
        found = events_named(span, name)
        assert len(found) == 1, f"{step.title}: {len(found)} {name!r} events; all: {events(span)}"
        event = found[0]
        for key, value in expected.items():
            assert event.get(key) == value, f"{step.title}: {name}[{key!r}] = {event.get(key)!r}"
        assert event["request.id"] == sent.request_id


def test_the_tour_shows_every_signal_event_in_jaeger(run: Run):
    seen = {event["event"] for sent in run.tour for event in events(run.server_span(sent))}
    assert REQUIRED_EVENTS <= seen, f"missing: {REQUIRED_EVENTS - seen}"


@pytest.mark.parametrize("step", AUTH_STEPS, ids=[step.title for step in AUTH_STEPS])
def test_auth_events_carry_enduser_id_and_set_it_on_the_span(run: Run, step: Step):
    span = run.server_span(run.tour[TOUR.index(step)])
    names = [name for name in step.events if name.startswith("auth.")]  # what the app sends
    auth_events = [event for event in events(span) if event["event"] in names]
    assert len(auth_events) == len(names), events(span)
    assert all(event.get("enduser.id") == "alice" for event in auth_events), auth_events
    # A failed login's user is who someone claimed to be: its event says it, the span does not.
    failed = all(event["event"] == "auth.login_failed" for event in auth_events)
    assert tags(span).get("enduser.id") == (None if failed else "alice")


def test_the_failing_request_is_an_error_with_its_exception(run: Run):
    span = run.server_span(run.tour[TOUR.index(FAILING)])
    span_tags = tags(span)
    assert span_tags.get("otel.status_code") == "ERROR"
    assert span_tags.get("error") is True
    assert span_tags.get("http.response.status_code") == 500
    exceptions = events_named(span, "exception")
    assert len(exceptions) == 1, [e["event"] for e in events(span)]
    exception = exceptions[0]
    assert exception["exception.type"] == "RuntimeError"
    assert "report generator crashed for 2026" in exception["exception.message"]
    stacktrace = exception["exception.stacktrace"]
    assert stacktrace.startswith("Traceback (most recent call last):")
    assert "examples/app.py" in stacktrace and "in report" in stacktrace
    assert "RuntimeError: report generator crashed for 2026" in stacktrace
    (signal_event,) = events_named(span, "flask.got_request_exception")
    assert "RuntimeError: report generator crashed for 2026" in signal_event["exception.stacktrace"]
    # the other requests, 4xx included, are not errors
    others = [s for s in run.requests if s is not run.tour[TOUR.index(FAILING)]]
    assert not [s.title for s in others if tags(run.server_span(s)).get("otel.status_code") == "ERROR"]


def test_every_log_line_leads_to_its_trace_and_back(run: Run):
    access = [line for line in run.log_lines if line.get("event") == "flask.request_finished"]
    assert len(access) == len(run.requests), "one access line per request"
    correlated = [line for line in run.log_lines if line.get("trace_id")]
    assert {id(line) for line in access} <= {id(line) for line in correlated}
    for line in correlated:
        trace = run.by_id.get(line["trace_id"])
        assert trace is not None, f"trace {line['trace_id']} of log line {line} is not in Jaeger"
        span = server_span(trace)
        assert hex_id(trace["traceID"], 32) == line["trace_id"]
        assert hex_id(span["spanID"], 16) == line["span_id"], line
        if "request.id" in line:
            assert request_ids(trace) == {line["request.id"]}
    # and back: every trace in Jaeger has its access line, with the server span's ids
    pairs = {(line["trace_id"], line["span_id"]) for line in access}
    for trace in run.traces:
        span = server_span(trace)
        assert (hex_id(trace["traceID"], 32), hex_id(span["spanID"], 16)) in pairs
    # the access lines of the tour say what the client saw
    by_request = {line["request.id"]: line for line in access}
    for sent in run.requests:
        assert by_request[sent.request_id]["http.response.status_code"] == sent.status


def test_no_password_or_token_from_the_tour_reaches_jaeger(run: Run):
    assert run.jaeger_bodies and run.session_cookies
    everything = b"\n".join(run.jaeger_bodies)
    assert b"lantern" in everything, "the check reads the responses that hold the events"
    for secret in [*PASSWORDS, API_TOKEN, *run.session_cookies]:
        assert secret.encode() not in everything, f"{secret!r} is in what Jaeger returns"


def test_no_password_or_token_from_the_tour_is_in_the_log_lines(run: Run):
    assert b"lantern" in run.raw_log
    for secret in [*PASSWORDS, API_TOKEN, *run.session_cookies]:
        assert secret.encode() not in run.raw_log, f"{secret!r} is in the app's JSON lines"
