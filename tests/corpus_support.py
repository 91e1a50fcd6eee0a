"""The corpus of real Flask apps: each served twice over, without flask-sigobs and with it, and compared.

An app of the corpus (:class:`CorpusApp`) is a package's own module or shipped example, or, where
a package ships none, its docs' quick start (``tests/corpus_apps``). :func:`serve` runs it under a
real gunicorn with two workers, in a work folder of its own (a fresh SQLite database, made by the
app's ``prepare`` commands before the workers start), either plainly or under a launcher
(``sigobs run --`` or ``opentelemetry-instrument``) sending its spans over OTLP/HTTP to an
:class:`~tests.servers.OtlpSink`. The app's ``script`` sends the same requests to both runs
through a :class:`Client` with a cookie jar (sessions, CSRF tokens read from the forms as the
apps' docs say), recording each request and the secrets it used.

:func:`check_attached_run` then holds the attached run to the plain one: the same statuses (and
bodies where the script says so), one access line per request with its trace and request ids,
one server span per request with those ids, no 4xx reported as an error, and no secret in the
JSON lines, the exported spans or what the processes printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from .e2e.stack import (GUNICORN_CONFIG, ROOT, NoRedirect, Process, _gunicorn_has_setting, clean_environ, free_ports,
                        http_request, wait_for)
from .servers import OtlpSink, ReceivedSpan

LAUNCHERS = {
    "sigobs-run": [sys.executable, "-m", "flask_sigobs", "run", "--"],
    "opentelemetry-instrument": [str(Path(sys.executable).parent / "opentelemetry-instrument")],
}
TRACE_ID = re.compile(r"[0-9a-f]{32}")
SPAN_ID = re.compile(r"[0-9a-f]{16}")
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
SPAN_KIND_SERVER = 2
STATUS_ERROR = 2


# -- requests -----------------------------------------------------------------------------------

@dataclass
class Sent:
    """One request of a script and what came back."""

    label: str
    method: str
    path: str
    status: int
    request_id: str
    echoed_id: str | None
    body: bytes
    same_body: bool


@dataclass
class Run:
    """Everything one run of a script sent and the secrets it used, across its clients."""

    base_url: str
    workdir: Path
    sent: list[Sent] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)

    def client(self) -> "Client":
        """A new browser: its own cookie jar (a fresh session)."""
        return Client(self)

    def secret(self, value: str) -> str:
        self.secrets.add(value)
        return value

    def by_label(self, label: str) -> Sent:
        (found,) = [s for s in self.sent if s.label == label]
        return found


class Client:
    """A cookie-keeping HTTP client that never follows a redirect: each request is one request."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(self.jar))

    def request(self, label: str, method: str, path: str, *, form: dict[str, str] | None = None,
                json_body: Any = None, headers: dict[str, str] | None = None, same_body: bool = False) -> Sent:
        assert label not in {s.label for s in self.run.sent}, f"two requests labelled {label!r}"
        request_id = f"c{uuid.uuid4().hex[:20]}"
        all_headers = {"X-Request-ID": request_id, "User-Agent": "sigobs-corpus/1.0", **(headers or {})}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.run.base_url + path, data=data, method=method, headers=all_headers)
        try:
            with self.opener.open(request, timeout=20) as response:
                status, response_headers, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, response_headers, body = error.code, error.headers, error.read()
        for cookie in self.jar:  # a session cookie is a secret like any other
            if cookie.value and len(cookie.value) >= 16:
                self.run.secrets.add(cookie.value)
        sent = Sent(label, method, path, status, request_id, response_headers.get("X-Request-ID"), body, same_body)
        self.run.sent.append(sent)
        return sent

    def get(self, label: str, path: str, **kwargs: Any) -> Sent:
        return self.request(label, "GET", path, **kwargs)

    def post(self, label: str, path: str, **kwargs: Any) -> Sent:
        return self.request(label, "POST", path, **kwargs)

    def csrf_token(self, sent: Sent) -> str:
        """The CSRF token of the form in a page, as Flask-WTF renders it (a secret too)."""
        found = CSRF_FIELD.search(sent.body.decode(errors="replace"))
        assert found, f"{sent.method} {sent.path} ({sent.status}): no csrf_token in the page"
        return self.run.secret(found.group(1))


# -- the apps -----------------------------------------------------------------------------------

@dataclass
class CorpusApp:
    """A third-party app, how to serve it, and the requests that prove it.

    ``target`` is gunicorn's (``module:app``), imported in ``cwd()``; ``prepare`` commands run
    first in the run's work folder (``{python}`` is this interpreter), with ``environ(data)``
    (``data``: the run's folder for its database and settings, see :func:`data_folder`);
    ``script(run)`` sends the requests, ``expect`` (label -> status) holds for the run without
    flask-sigobs (the script does what it means to); ``auth(attached)`` returns the problems with
    the auth events (and other app-specific outputs) of an attached run.
    """

    name: str
    target: str
    script: Callable[[Run], None]
    environ: Callable[[Path], dict[str, str]] = lambda data: {}
    prepare: list[list[str]] = field(default_factory=list)
    cwd: Callable[[], Path] = lambda: ROOT
    expect: dict[str, int] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    auth: Callable[["Attached"], list[str]] | None = None
    ready_path: str | None = None  # when set, ready once this answers (not on the workers' lines)


def sqlite_environ(data: Path) -> dict[str, str]:
    return {"CORPUS_DATABASE_URI": f"sqlite:///{data / 'app.db'}"}


def data_folder(workdir: Path) -> Path:
    """Where a run keeps its database: in memory (``/dev/shm``) where there is one, else ``workdir``.

    SQLite syncs each commit to disk, and an app that commits at start-up (Flask-AppBuilder writes
    its permissions from each worker) then waits seconds on a busy disk; in memory it does not.
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="sigobs-corpus-", dir=shm))
    return workdir


# -- serving --------------------------------------------------------------------------------

@dataclass
class Served:
    """One run of an app: its port, its processes' output, its JSON lines."""

    workdir: Path
    port: int
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "app.jsonl"

    def output(self) -> str:
        return self.process.log.read_text(errors="replace") if self.process else ""

    def lines(self) -> list[dict[str, Any]]:
        if not self.log_file.exists():
            return []
        return [json.loads(raw) for raw in self.log_file.read_text().splitlines() if raw.strip()]


@contextlib.contextmanager
def serve(app: CorpusApp, workdir: Path, launcher: str | None, sink: OtlpSink | None = None,
          service: str = "", workers: int = 2) -> Iterator[Served]:
    """``[LAUNCHER] gunicorn -w 2 TARGET`` in its own process group, ready; stopped (SIGTERM) on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    (port,) = free_ports(1)
    served = Served(workdir, port)
    data = data_folder(workdir)
    extra = {"PYTHONUNBUFFERED": "1", **app.environ(data)}
    if launcher is not None:
        assert sink is not None
        extra.update(OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint.rsplit("/v1/", 1)[0], OTEL_BSP_SCHEDULE_DELAY="200",
                     OTEL_SERVICE_NAME=service, SIGOBS_SERVICE_NAME=service, SIGOBS_LOG_FILE=str(served.log_file))
    env = clean_environ(**extra)
    for command in app.prepare:
        args = [part.format(python=sys.executable) for part in command]
        result = subprocess.run(args, cwd=workdir, env={**env, "PYTHONPATH": str(app.cwd())}, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, f"{app.name}: {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    args = [*(LAUNCHERS[launcher] if launcher else []), sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG),
            "-w", str(workers), "-b", f"127.0.0.1:{port}", "--graceful-timeout", "15"]
    if _gunicorn_has_setting("control_socket_disable"):
        args.append("--no-control-socket")
    args.append(app.target)
    served.process = Process(f"{app.name}-{launcher or 'plain'}", args, env, workdir / "gunicorn.log", cwd=app.cwd())
    try:
        served.process.start()

        def workers_ready() -> bool:  # see tests/e2e/gunicorn_conf.py
            if app.ready_path is not None:
                status, _, _ = http_request(served.url + app.ready_path, timeout=5)
                return status == 200
            return served.process.output(tail=2000).count("sigobs-e2e: worker") >= workers  # type: ignore[union-attr]

        wait_for(f"{workers} gunicorn workers of {app.target}", workers_ready, 60, alive=served.process.check_alive)
        yield served
    except BaseException:
        print(f"Output of {app.name} ({launcher or 'without flask-sigobs'}):\n{served.process.output(200)}",
              file=sys.stderr)
        raise
    finally:
        served.process.stop()  # gunicorn stops gracefully on SIGTERM: the workers flush their spans
        if data != workdir:
            shutil.rmtree(data, ignore_errors=True)


def run_script(app: CorpusApp, served: Served) -> Run:
    run = Run(served.url, served.workdir, secrets=set(app.secrets))
    app.script(run)
    return run


# -- the attached run against the plain one --------------------------------------------------

@dataclass
class Attached:
    """An attached run, read back: its requests, JSON lines, exported spans and output."""

    app: CorpusApp
    launcher: str
    service: str
    run: Run
    lines: list[dict[str, Any]]
    spans: list[ReceivedSpan]
    exported: bytes
    output: str
    log_text: str

    def lines_of(self, sent: Sent) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("request.id") == sent.request_id]

    def access_line(self, sent: Sent) -> dict[str, Any]:
        (line,) = [line for line in self.lines_of(sent) if line.get("event") == "flask.request_finished"]
        return line

    def span(self, sent: Sent) -> ReceivedSpan:
        line = self.access_line(sent)
        (span,) = [s for s in self.spans if s.trace_id == line["trace_id"] and s.span_id == line["span_id"]]
        return span

    def events(self, sent: Sent, prefix: str = "auth.") -> list[dict[str, Any]]:
        return [line for line in self.lines_of(sent) if str(line.get("event", "")).startswith(prefix)]


def read_attached(app: CorpusApp, launcher: str, service: str, run: Run, served: Served,
                  sink: OtlpSink) -> Attached:
    """After the server stopped: its lines, and the spans it exported (waiting for the last ones)."""
    wanted = {s.request_id for s in run.sent}

    def all_exported() -> bool:
        ids = {attrs.get("request.id") for span in sink.spans for _, attrs in span.events}
        return wanted <= ids

    with contextlib.suppress(AssertionError):  # the checks say what is missing
        wait_for("every request's span", all_exported, 15, interval=0.2)
    log_text = served.log_file.read_text() if served.log_file.exists() else ""
    return Attached(app, launcher, service, run, served.lines(), sink.spans, bytes(sink.raw), served.output(),
                    log_text)


def check_plain_run(app: CorpusApp, plain: Run) -> None:
    """The run without flask-sigobs answered as the script means: the comparison is not vacuous."""
    got = {s.label: s.status for s in plain.sent}
    wrong = {label: (got.get(label), status) for label, status in app.expect.items() if got.get(label) != status}
    assert not wrong, f"{app.name} without flask-sigobs: (got, expected) {wrong}"


def check_attached_run(plain: Run, attached: Attached) -> None:
    """The attached run, request by request, against the plain one; every problem found, at once."""
    problems: list[str] = []
    got, expected = [(s.label, s.status) for s in attached.run.sent], [(s.label, s.status) for s in plain.sent]
    if got != expected:
        problems.append(f"statuses differ from the run without flask-sigobs:\n  with:    {got}\n  without: {expected}")
    for before, s in zip(plain.sent, attached.run.sent):
        if s.same_body and s.body != before.body:
            problems.append(f"{s.label}: body {s.body[:300]!r}, without flask-sigobs {before.body[:300]!r}")
    for s in attached.run.sent:
        what = f"{s.label}: {s.method} {s.path} -> {s.status} ({s.request_id})"
        if s.echoed_id != s.request_id:
            problems.append(f"{what}: X-Request-ID {s.echoed_id!r} in the response, so flask-sigobs is not attached")
        lines = attached.lines_of(s)
        access = [line for line in lines if line.get("event") == "flask.request_finished"]
        if len(access) != 1:
            problems.append(f"{what}: {len(access)} access lines")
            continue
        line = access[0]
        if not TRACE_ID.fullmatch(str(line.get("trace_id"))) or line["trace_id"] == "0" * 32 \
                or not SPAN_ID.fullmatch(str(line.get("span_id"))):
            problems.append(f"{what}: access line without trace ids: {line}")
            continue
        if line.get("http.response.status_code") != s.status or line.get("service.name") != attached.service:
            problems.append(f"{what}: access line {line}")
        if s.status < 500 and line.get("level") == "error":
            problems.append(f"{what}: a {s.status} access line at level error")
        if s.status < 500:
            reported = [other for other in lines if other.get("event") == "flask.got_request_exception"]
            if reported:
                problems.append(f"{what}: a {s.status} reported as an exception: "
                                f"{[(r.get('level'), r.get('exception.type')) for r in reported]}")
        spans = [span for span in attached.spans if span.trace_id == line["trace_id"] and span.span_id == line["span_id"]]
        if len(spans) != 1 or spans[0].kind != SPAN_KIND_SERVER:
            problems.append(f"{what}: {len(spans)} exported spans with the line's trace_id/span_id")
            continue
        span = spans[0]
        if [attrs.get("request.id") for name, attrs in span.events if name == "flask.request_finished"] != [s.request_id]:
            problems.append(f"{what}: span events {[name for name, _ in span.events]}")
        if status_attribute(span) != s.status:
            problems.append(f"{what}: span status code {status_attribute(span)} ({span.attributes})")
        if (span.status_code == STATUS_ERROR) != (s.status >= 500):
            problems.append(f"{what}: span status {span.status_code} ({span.status_message!r}) for a {s.status}")
        if span.service != attached.service:
            problems.append(f"{what}: span of service {span.service!r}")
    problems += secrets_found(attached)
    if attached.app.auth is not None:
        try:
            problems += attached.app.auth(attached)
        except Exception as exc:  # a request without its line or span: said above already
            problems.append(f"the app's own checks could not run: {exc!r}")
    assert not problems, f"{attached.app.name} under {attached.launcher}:\n" + "\n".join(problems)


def status_attribute(span: ReceivedSpan) -> Any:
    """The response status on a span, by the stable name or the older one (the instrumentation's default)."""
    return span.attributes.get("http.response.status_code", span.attributes.get("http.status_code"))


def secrets_found(attached: Attached) -> list[str]:
    """Each secret the run used, wherever flask-sigobs wrote it: JSON lines, spans, the output."""
    found = []
    outputs = {"the JSON lines": attached.log_text, "the exported spans": attached.exported.decode("latin-1"),
               "the processes' output": attached.output}
    for secret in sorted(attached.run.secrets):
        for where, text in outputs.items():
            if secret in text:
                at = text.index(secret)
                found.append(f"secret {secret[:12]}... in {where}: ...{text[max(0, at - 200):at + 60]!r}")
    return found


# -- package-shipped examples ------------------------------------------------------------------

def sdist_files(project: str, version: str, sha256: str, members: list[str]) -> Path:
    """Files of a project's source distribution on PyPI, as published (downloaded once, checked, cached).

    For the example apps that a project's wheel leaves out. Returns the folder holding ``members``
    (paths inside the sdist's top folder), under ``${SIGOBS_CACHE:-~/.cache/flask-sigobs}``.
    """
    cache = Path(os.environ.get("SIGOBS_CACHE") or Path.home() / ".cache" / "flask-sigobs")
    target = cache / f"{project}-{version}-sdist"
    if all((target / member).is_file() for member in members):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                                 "-d", tmp, f"{project}=={version}"], capture_output=True, text=True, timeout=300)
        sdists = list(Path(tmp).glob("*.tar.gz"))
        if result.returncode != 0 or len(sdists) != 1:
            pytest.skip(f"could not download {project}'s sdist from PyPI: {result.stderr[-500:]}")
        digest = hashlib.sha256(sdists[0].read_bytes()).hexdigest()
        assert digest == sha256, f"{sdists[0].name} has SHA-256 {digest}, not the published one"
        staging = Path(tmp) / "out"
        with tarfile.open(sdists[0]) as archive:
            top = archive.getnames()[0].split("/", 1)[0]
            for member in members:
                data = archive.extractfile(f"{top}/{member}").read()  # type: ignore[union-attr]
                (staging / member).parent.mkdir(parents=True, exist_ok=True)
                (staging / member).write_bytes(data)
        shutil.rmtree(target, ignore_errors=True)
        with contextlib.suppress(OSError):  # another run may have won the race: same content
            staging.rename(target)
    assert all((target / member).is_file() for member in members), f"could not unpack {project}'s sdist"
    return target
