"""Zero-code attach, for real: untouched apps, both launchers, real servers, a real OTLP receiver.

    ./scripts/test tests/test_zero_code_attach.py

Third-party Flask apps from PyPI, their code untouched (``httpbin``, and Flasgger's ``colors``
example app from its source distribution), and the apps of ``tests/attach_apps.py`` (a factory,
an app that calls ``SigObs(app)`` itself, several apps in one process, one created after the
attach point) run under ``sigobs run -- ...`` and ``opentelemetry-instrument ...``, served by
gunicorn with two workers (``--preload`` too), ``flask run`` and ``python app.py``. Nothing but
environment variables configures them. Their spans go over OTLP to the Collector and Jaeger;
the checks read the JSON lines and Jaeger's query API and find every request there once, with
its events, route and status, and the work of both gunicorn workers.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from . import attach_support as support
from .attach_support import Sent, check_requests, events_named, send, server_spans, since_now


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory):
    with support.otlp_receiver(tmp_path_factory.mktemp("receiver")) as stack:
        yield stack


HTTPBIN_CASES = [("sigobs-run", False), ("opentelemetry-instrument", True)]


@pytest.mark.parametrize("launcher,preload", HTTPBIN_CASES, ids=[f"{l}{'-preload' if p else ''}" for l, p in HTTPBIN_CASES])
def test_httpbin_untouched_under_gunicorn_with_two_workers(receiver, tmp_path: Path, launcher: str, preload: bool):
    service = "httpbin" + support.run_id()
    credentials = base64.b64encode(b"u:p").decode()
    since = since_now()
    with support.gunicorn(receiver, tmp_path, launcher, "httpbin:app", preload=preload,
                          SIGOBS_SERVICE_NAME=service) as app:
        sent = [
            send(app, service, "/get?x=1", "/get", 200),
            send(app, service, "/status/500", "/status/<codes>", 500),
            send(app, service, "/redirect/1", "/redirect/<int:n>", 302),
            send(app, service, "/headers", "/headers", 200),
            send(app, service, "/basic-auth/u/p", "/basic-auth/<user>/<passwd>", 401),
            send(app, service, "/basic-auth/u/p", "/basic-auth/<user>/<passwd>", 200,
                 headers={"Authorization": f"Basic {credentials}"}),
            send(app, service, "/no-such-page", None, 404),
        ]
        sent += support.on_every_worker(app, service, "/get", "/get")
        lines, traces = support.stop_and_read(app, receiver, sent, since)
    check_requests(lines, traces, sent)
    get = next(line for line in lines if line.get("request.id") == sent[0].request_id)
    assert get["url.path"] == "/get" and get["http.request.method"] == "GET"
    failed = next(line for line in lines if line.get("request.id") == sent[1].request_id)
    assert failed["level"] == "error"  # a 5xx access line
    assert credentials not in app.app_log.read_text()  # the Authorization header is never logged


def test_flasgger_example_app_untouched_under_gunicorn(receiver, tmp_path: Path):
    examples = support.flasgger_examples()
    service = "flasgger-colors" + support.run_id()
    since = since_now()
    with support.gunicorn(receiver, tmp_path, "sigobs-run", "examples.colors:app", preload=True, cwd=examples,
                          SIGOBS_SERVICE_NAME=service) as app:
        sent = [
            send(app, service, "/colors/all/", "/colors/<palette>/", 200),
            send(app, service, "/colors/rgb/", "/colors/<palette>/", 200),
            send(app, service, "/colors/rgb", None, 308),  # Werkzeug's redirect to the slash
            send(app, service, "/apidocs/", "/apidocs/", 200),  # Flasgger's UI: a template
            send(app, service, "/apispec_1.json", "/apispec_1.json", 200),
        ]
        sent += support.on_every_worker(app, service, "/colors/cmyk/", "/colors/<palette>/")
        lines, traces = support.stop_and_read(app, receiver, sent, since)
    check_requests(lines, traces, sent)
    (apidocs,) = [t for t in traces[service] if sent[3].request_id in support.request_ids(t)]
    rendered = events_named(server_spans(apidocs)[0], "flask.template_rendered")
    assert [event["template.name"] for event in rendered] == ["flasgger/index.html"]


OWN_CASES = [("sigobs-run", False), ("sigobs-run", True), ("opentelemetry-instrument", False),
             ("opentelemetry-instrument", True)]


@pytest.mark.parametrize("launcher,preload", OWN_CASES, ids=[f"{l}{'-preload' if p else ''}" for l, p in OWN_CASES])
def test_several_apps_of_one_process_each_attached_once(receiver, tmp_path: Path, launcher: str, preload: bool):
    """A factory's app, an app calling SigObs(app) itself, and one created on its first request.

    Under ``sigobs run`` each app has its own TracerProvider and service name. Under
    ``opentelemetry-instrument`` the Flask instrumentation sends every app's spans through the
    process's one global TracerProvider: there one service name for the process
    (``OTEL_SERVICE_NAME``, the standard way) names the spans and the lines alike.
    """
    run = support.run_id()
    front, own, late = f"front{run}", f"own{run}", f"late{run}"
    env = {"ATTACH_TEST_RUN": run}
    if launcher == "opentelemetry-instrument":
        front = own = late = env["OTEL_SERVICE_NAME"] = f"process{run}"
    since = since_now()
    with support.gunicorn(receiver, tmp_path, launcher, "tests.attach_apps:combined()", preload=preload,
                          **env) as app:
        sent = [
            send(app, front, "/items/1", "/items/<int:item_id>", 200),
            send(app, front, "/page", "/page", 200),
            send(app, front, "/boom", "/boom", 500),
            send(app, own, "/items/2", "/items/<int:item_id>", 200, prefix="/own"),
            send(app, own, "/private", "/private", 401, prefix="/own"),
            send(app, late, "/items/3", "/items/<int:item_id>", 200, prefix="/late"),
            send(app, late, "/go", "/go", 302, prefix="/late"),
            send(app, late, "/items/404", "/items/<int:item_id>", 404, prefix="/late"),
        ]
        sent += support.on_every_worker(app, front, "/items/7", "/items/<int:item_id>")
        whoami = {}
        for prefix in ("", "/own", "/late"):
            status, _, body = support.http_request(f"{app.app_url}{prefix}/whoami")
            assert status == 200
            whoami[prefix] = json.loads(body)
        lines, traces = support.stop_and_read(app, receiver, sent, since)
    check_requests(lines, traces, sent)
    assert [whoami[p]["attached"] for p in ("", "/own", "/late")] == [True, True, True]
    assert whoami["/own"]["own_sigobs"] is True  # the app's own SigObs, not a second one
    assert whoami[""]["own_sigobs"] is False
    if launcher == "opentelemetry-instrument":  # its Flask instrumentation made the apps
        assert {w["flask_class"] for w in whoami.values()} == \
            {"opentelemetry.instrumentation.flask._InstrumentedFlask"}
    (boom,) = [t for t in traces[front] if sent[2].request_id in support.request_ids(t)]
    (exception,) = events_named(server_spans(boom)[0], "flask.got_request_exception")
    assert exception["exception.type"] == "RuntimeError"
    (page,) = [t for t in traces[front] if sent[1].request_id in support.request_ids(t)]
    assert len(events_named(server_spans(page)[0], "flask.template_rendered")) == 1


SINGLE_CASES = {
    "flask-run-under-opentelemetry-instrument": (
        "opentelemetry-instrument",
        [sys.executable, "-m", "flask", "--app", "tests.attach_apps:create_app('cli')", "run",
         "--port", "{port}", "--no-reload"]),
    "python-app-py-under-sigobs-run": (
        "sigobs-run", [sys.executable, "-m", "tests.attach_apps", "{port}"]),
}


@pytest.mark.parametrize("case", list(SINGLE_CASES))
def test_flask_run_and_python_app_py(receiver, tmp_path: Path, case: str):
    launcher, command = SINGLE_CASES[case]
    run = support.run_id()
    service = ("cli" if "flask-run" in case else "module") + run
    since = since_now()
    with support.single_process(receiver, tmp_path, launcher, command, ATTACH_TEST_RUN=run) as app:
        sent = [send(app, service, "/items/4", "/items/<int:item_id>", 200),
                send(app, service, "/page", "/page", 200),
                send(app, service, "/boom", "/boom", 500)]
        lines, traces = support.stop_and_read(app, receiver, sent, since, interrupt=True)
    check_requests(lines, traces, sent)


PROBE = """
import json, sys
import tests.attach_apps as apps
app = apps.create_app("probe")
response = app.test_client().get("/items/1")
print(json.dumps({"status": response.status_code, "attached": "sigobs" in app.extensions,
                  "request_id": response.headers.get("X-Request-ID")}))
"""


@pytest.mark.parametrize("launcher", list(support.LAUNCHERS))
@pytest.mark.parametrize("disabled", [None, "flask_sigobs", "requests,flask_sigobs"])
def test_opentelemetry_disabled_instrumentations_switches_it_off(tmp_path: Path, launcher: str, disabled: str | None):
    log = tmp_path / "lines.jsonl"
    extra = {"SIGOBS_LOG_FILE": str(log), "OTEL_TRACES_EXPORTER": "none"}
    if disabled:
        extra["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = disabled
    result = subprocess.run([*support.LAUNCHERS[launcher], sys.executable, "-c", PROBE], cwd=support.ROOT,
                            env=support.clean_environ(**extra), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["status"] == 200
    if disabled:
        assert probe == {"status": 200, "attached": False, "request_id": None}
        assert not log.exists() or log.read_text() == ""
    else:
        assert probe["attached"] is True
        (line,) = [json.loads(raw) for raw in log.read_text().splitlines()]
        assert line["event"] == "flask.request_finished" and line["request.id"] == probe["request_id"]


def test_sigobs_run_says_when_the_command_is_missing():
    result = subprocess.run([*support.LAUNCHERS["sigobs-run"], "no-such-command-sigobs"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 127
    assert "command not found: no-such-command-sigobs" in result.stderr


def test_sigobs_run_keeps_a_sitecustomize_it_hides(tmp_path: Path):
    """A sitecustomize already on the path (a distro's, opentelemetry-instrument's) still runs."""
    (tmp_path / "sitecustomize.py").write_text("import os\nos.environ['HIDDEN_SITECUSTOMIZE_RAN'] = 'yes'\n")
    code = "import os, flask.app; print(os.environ.get('HIDDEN_SITECUSTOMIZE_RAN'), " \
           "getattr(flask.app.Flask.__call__, '__sigobs_autoattach__', False))"
    result = subprocess.run([*support.LAUNCHERS["sigobs-run"], sys.executable, "-c", code], cwd=support.ROOT,
                            env=support.clean_environ(PYTHONPATH=str(tmp_path)), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["yes", "True"]


def test_both_launchers_at_once_attach_once(tmp_path: Path):
    log = tmp_path / "lines.jsonl"
    command = [*support.LAUNCHERS["opentelemetry-instrument"], *support.LAUNCHERS["sigobs-run"],
               sys.executable, "-c", PROBE]
    result = subprocess.run(command, cwd=support.ROOT, capture_output=True, text=True, timeout=60,
                            env=support.clean_environ(SIGOBS_LOG_FILE=str(log), OTEL_TRACES_EXPORTER="none"))
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["attached"] is True
    assert [json.loads(raw)["request.id"] for raw in log.read_text().splitlines()] == [probe["request_id"]]


def test_the_checks_fail_on_a_request_they_cannot_find():
    """The checks fail on a request they cannot find: they are not vacuous."""
    with pytest.raises(AssertionError, match="0 access lines"):
        check_requests([], {}, [Sent("svc", "GET", "/x", "/x", 200, "t-missing")])
