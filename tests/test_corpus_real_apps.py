"""Proved on real apps: third-party Flask apps from PyPI, attached untouched, against runs without it.

    ./scripts/test tests/test_corpus_real_apps.py

Each app is served by gunicorn with two workers, once without flask-sigobs and once under each
launcher (``sigobs run --`` and ``opentelemetry-instrument``), its spans going over OTLP/HTTP to a
receiver in the test. The same scripted requests go to every run; the attached runs must answer
them as the plain run did, with one access line per request carrying its trace and request ids,
one server span per request with those ids, auth events where the app authenticates, and no
secret the script used (passwords, API keys, CSRF and session tokens, invite and reset tokens)
in any JSON line, exported span or output. See docs/reliability.md, "Proved on real apps".

The apps, each with patterns the others lack:

- ``flask-security``: Flask-Security-Too's quick start (tests/corpus_apps), its real ``/login``
  form with Flask-WTF's CSRF token, a failed and a successful login, and a password-reset link
  ``/reset/<token>`` used as its ``recoverable`` views do;
- ``appbuilder``: Flask-AppBuilder with its own security manager (database auth, its user made
  by ``flask fab create-admin``): form and REST-API logins, failed and successful, and a logout;
- ``ihatemoney``: the shared-budget app from PyPI (``ihatemoney.wsgi:application``), untouched:
  its own prefix middleware and werkzeug's ``ProxyFix`` on ``app.wsgi_app``, project passwords,
  and invite links ``/<project_id>/join/<token>``;
- ``proxied``: an app behind ``ProxyFix`` as Flask's docs set it up, plus a prefix middleware whose
  attributes its views read back through ``current_app.wsgi_app`` (issue 21);
- ``apiflask``: apiflask's own ``examples/basic`` app from its sdist: schemas, 201, 404 and 422;
- ``restful``: Flask-RESTful's quick start with its docs' authenticating ``Resource`` that
  aborts 401 (and 404 for a missing item): HTTP errors that Flask-RESTful reports as exceptions.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from . import corpus_support as corpus
from .corpus_support import Attached, CorpusApp, Run, sqlite_environ
from .extras import NO_OTEL, require_app
from .servers import OtlpSink

pytestmark = pytest.mark.slow  # gunicorn twice an app and launcher: the whole suite's, not the matrix rows' core

REDACTED = "[REDACTED]"


def has_enduser(attributes: dict[str, Any]) -> bool:
    return attributes.get("enduser.id") not in (None, "")


# -- Flask-Security-Too ------------------------------------------------------------------------

FS_PASSWORD = "Corpus-fs-pw-5h2Kq9"
FS_NEW_PASSWORD = "Corpus-fs-new-pw-Lx93"
FS_WRONG_PASSWORD = "Corpus-fs-wrong-pw-Qe41"
FS_RESET_TOKEN = ("import tests.corpus_apps.security_quickstart as quickstart;"
                  "from flask_security.recoverable import generate_reset_password_token;"
                  "app = quickstart.app; app.app_context().push();"
                  "user = app.security.datastore.find_user(email='test@me.com');"
                  "open('reset-token', 'w').write(generate_reset_password_token(user))")


def security_script(run: Run) -> None:
    browser = run.client()
    browser.get("home-anonymous", "/")
    token = browser.csrf_token(browser.get("login-page", "/login"))
    browser.post("login-failed", "/login", form={"email": "test@me.com", "password": FS_WRONG_PASSWORD,
                                                 "csrf_token": token})
    browser.post("login-succeeded", "/login", form={"email": "test@me.com", "password": FS_PASSWORD,
                                                    "csrf_token": token})
    home = browser.get("home", "/", same_body=True)
    browser.post("logout", "/logout", form={"csrf_token": token})
    browser.get("home-after-logout", "/")
    assert home.status != 200 or b"test@me.com" in home.body
    # the password-reset link a user gets by mail: the token in the URL path
    reset_token = run.secret((run.workdir / "reset-token").read_text().strip())
    mailed = run.client()
    form = mailed.csrf_token(mailed.get("reset-link", f"/reset/{reset_token}"))
    mailed.post("reset-done", f"/reset/{reset_token}", form={"password": FS_NEW_PASSWORD,
                                                            "password_confirm": FS_NEW_PASSWORD, "csrf_token": form})
    mailed.get("reset-link-used", f"/reset/{reset_token}")


def security_checks(attached: Attached) -> list[str]:
    """Flask-Security-Too's own signals (issue 21: bridged when it is installed) for a failed and a
    successful login, a protected page refused and a password reset; the span's user set by a
    success only; the reset token out of ``url.path`` (issue 24)."""
    problems = []
    failed, succeeded = attached.run.by_label("login-failed"), attached.run.by_label("login-succeeded")
    failed_events = [e for e in attached.events(failed) if e["event"] == "auth.user_failed_authn"]
    if len(failed_events) != 1 or failed_events[0].get("level") != "warning":
        problems.append(f"login-failed: auth.user_failed_authn at warning expected, auth events "
                        f"{attached.events(failed)}")
    if has_enduser(attached.span(failed).attributes):
        problems.append(f"login-failed: the span names a user: {attached.span(failed).attributes['enduser.id']!r}")
    names = [e["event"] for e in attached.events(succeeded)]
    if "auth.user_authenticated" not in names:
        problems.append(f"login-succeeded: no auth.user_authenticated; auth events {names}")
    users = [e for e in attached.events(succeeded) if e["event"] in ("auth.user_authenticated", "auth.user_logged_in")]
    if not users or not all(has_enduser(e) for e in users) or not has_enduser(attached.span(succeeded).attributes):
        problems.append(f"login-succeeded: enduser.id missing: {attached.events(succeeded)}, "
                        f"span {attached.span(succeeded).attributes.get('enduser.id')!r}")
    anonymous = attached.run.by_label("home-anonymous")  # auth_required turned it away
    if "auth.user_unauthenticated" not in [e["event"] for e in attached.events(anonymous)]:
        problems.append(f"home-anonymous: no auth.user_unauthenticated; auth events {attached.events(anonymous)}")
    reset = attached.run.by_label("reset-done")
    if "auth.password_reset" not in [e["event"] for e in attached.events(reset)]:
        problems.append(f"reset-done: no auth.password_reset; auth events {attached.events(reset)}")
    for label in ("reset-link", "reset-done", "reset-link-used"):
        sent = attached.run.by_label(label)
        line, span = attached.access_line(sent), attached.span(sent)
        if line.get("http.route") != "/reset/<token>" or line.get("url.path") != f"/reset/{REDACTED}":
            problems.append(f"{label}: route {line.get('http.route')!r}, url.path {line.get('url.path')!r}")
        if span.attributes.get("url.path", f"/reset/{REDACTED}") != f"/reset/{REDACTED}":
            problems.append(f"{label}: span url.path {span.attributes['url.path']!r}")
    return problems


SECURITY = CorpusApp(
    name="flask-security", target="tests.corpus_apps.security_quickstart:app", script=security_script,
    environ=sqlite_environ, prepare=[["{python}", "-c", FS_RESET_TOKEN]],
    secrets=(FS_PASSWORD, FS_NEW_PASSWORD, FS_WRONG_PASSWORD), auth=security_checks,
    expect={"home-anonymous": 302, "login-page": 200, "login-failed": 200, "login-succeeded": 302, "home": 200,
            "logout": 302, "home-after-logout": 302, "reset-link": 200, "reset-done": 302, "reset-link-used": 302})


# -- Flask-AppBuilder ----------------------------------------------------------------------------

FAB_PASSWORD = "Corpus-fab-pw-8Jd3"
FAB_WRONG_PASSWORD = "Corpus-fab-wrong-pw-2Wm6"


def appbuilder_script(run: Run) -> None:
    browser = run.client()
    browser.get("users-anonymous", "/users/list/")
    token = browser.csrf_token(browser.get("login-page", "/login/"))
    browser.post("login-failed", "/login/", form={"username": "admin", "password": FAB_WRONG_PASSWORD,
                                                  "csrf_token": token})
    browser.post("login-succeeded", "/login/", form={"username": "admin", "password": FAB_PASSWORD,
                                                     "csrf_token": token})
    browser.get("users", "/users/list/")
    browser.get("logout", "/logout/")
    browser.get("users-after-logout", "/users/list/")
    browser.get("no-such-page", "/no/such/page/")
    api = run.client()
    api.post("api-login-failed", "/api/v1/security/login",
             json_body={"username": "admin", "password": FAB_WRONG_PASSWORD, "provider": "db"})
    answer = api.post("api-login-succeeded", "/api/v1/security/login",
                      json_body={"username": "admin", "password": FAB_PASSWORD, "provider": "db"})
    if answer.status == 200:
        run.secret(json.loads(answer.body)["access_token"])


def appbuilder_checks(attached: Attached) -> list[str]:
    """FAB logs in through Flask-Login: its signals are the auth events; the user on the span
    only once logged in; the logout's line says who logged out, as its span does (issue 24)."""
    problems = []
    failed, succeeded = attached.run.by_label("login-failed"), attached.run.by_label("login-succeeded")
    if has_enduser(attached.span(failed).attributes):
        problems.append(f"login-failed: the span names a user: {attached.span(failed).attributes['enduser.id']!r}")
    logged_in = [e for e in attached.events(succeeded) if e["event"] == "auth.user_logged_in"]
    if len(logged_in) != 1 or not has_enduser(logged_in[0]):
        problems.append(f"login-succeeded: auth events {attached.events(succeeded)}")
    user = logged_in[0].get("enduser.id") if logged_in else None
    if attached.span(succeeded).attributes.get("enduser.id") != user:
        problems.append(f"login-succeeded: span enduser.id {attached.span(succeeded).attributes.get('enduser.id')!r}")
    users = attached.run.by_label("users")
    if attached.span(users).attributes.get("enduser.id") != user or attached.access_line(users).get("enduser.id") != user:
        problems.append(f"users (logged in): enduser.id {attached.access_line(users).get('enduser.id')!r} on the "
                        f"line, {attached.span(users).attributes.get('enduser.id')!r} on the span, not {user!r}")
    logout = attached.run.by_label("logout")
    if [e["event"] for e in attached.events(logout)] != ["auth.user_logged_out"]:
        problems.append(f"logout: auth events {attached.events(logout)}")
    line_user, span_user = attached.access_line(logout).get("enduser.id"), attached.span(logout).attributes.get("enduser.id")
    if line_user != user or span_user != user:
        problems.append(f"logout: enduser.id {line_user!r} on the access line, {span_user!r} on the span, not {user!r}")
    return problems


APPBUILDER = CorpusApp(
    name="appbuilder", target="tests.corpus_apps.appbuilder_quickstart:app", script=appbuilder_script,
    environ=lambda data: {**sqlite_environ(data), "FLASK_APP": "tests.corpus_apps.appbuilder_quickstart:app"},
    prepare=[["{python}", "-m", "flask", "fab", "create-admin", "--username", "admin", "--firstname", "Ada",
              "--lastname", "Admin", "--email", "admin@fab.example", "--password", FAB_PASSWORD]],
    secrets=(FAB_PASSWORD, FAB_WRONG_PASSWORD), auth=appbuilder_checks,
    expect={"users-anonymous": 302, "login-page": 200, "login-failed": 302, "login-succeeded": 302, "users": 200,
            "logout": 302, "users-after-logout": 302, "no-such-page": 404, "api-login-failed": 401,
            "api-login-succeeded": 200})


# -- ihatemoney ----------------------------------------------------------------------------------

IHM_PASSWORD = "Corpus-ihm-pw-3Gv7"
IHM_WRONG_PASSWORD = "Corpus-ihm-wrong-pw-9Tb1"
IHM_SETTINGS = """\
SQLALCHEMY_DATABASE_URI = "sqlite:///{db}"
SECRET_KEY = "corpus-ihatemoney-settings-key"
SESSION_COOKIE_SECURE = False
"""


def ihatemoney_environ(data: Path) -> dict[str, str]:
    """Its documented settings file (``IHATEMONEY_SETTINGS_FILE_PATH``): a database per run, and
    the session cookie sent over plain HTTP."""
    settings = data / "ihatemoney.cfg"
    settings.write_text(IHM_SETTINGS.format(db=data / "ihatemoney.db"))
    return {"IHATEMONEY_SETTINGS_FILE_PATH": str(settings)}


def ihatemoney_script(run: Run) -> None:
    owner = run.client()
    owner.get("healthcheck", "/healthcheck", same_body=True)
    token = owner.csrf_token(owner.get("create-page", "/create"))
    owner.post("create-project", "/create", form={"id": "kitchen", "name": "Kitchen", "password": IHM_PASSWORD,
                                                  "contact_email": "kitchen@example.com", "default_currency": "XXX",
                                                  "csrf_token": token})
    owner.get("project", "/kitchen/")
    invite = owner.get("invite", "/kitchen/invite")
    found = re.search(r"/kitchen/join/([A-Za-z0-9_.\-]+)", invite.body.decode(errors="replace"))
    invite_token = run.secret(found.group(1)) if found else "no-invite-link-found"
    guest = run.client()
    guest.get("join", f"/kitchen/join/{invite_token}")
    guest.get("project-as-guest", "/kitchen/")
    stranger = run.client()
    stranger.get("join-bad-token", "/kitchen/join/not-the-token")
    stranger.get("project-as-stranger", "/kitchen/")
    token = stranger.csrf_token(stranger.get("authenticate-page", "/authenticate"))
    stranger.post("authenticate-failed", "/authenticate", form={"id": "kitchen", "password": IHM_WRONG_PASSWORD,
                                                                "csrf_token": token})
    stranger.post("authenticate-succeeded", "/authenticate", form={"id": "kitchen", "password": IHM_PASSWORD,
                                                                   "csrf_token": token})
    stranger.get("project-after-authenticate", "/kitchen/")
    stranger.get("no-such-page", "/kitchen/no/such/page")


def ihatemoney_checks(attached: Attached) -> list[str]:
    """The invite token out of ``url.path``, the project and the route still readable (issue 24)."""
    problems = []
    for label in ("join", "join-bad-token"):
        sent = attached.run.by_label(label)
        line, span = attached.access_line(sent), attached.span(sent)
        expected = f"/kitchen/join/{REDACTED}"
        if line.get("http.route") != "/<project_id>/join/<string:token>" or line.get("url.path") != expected:
            problems.append(f"{label}: route {line.get('http.route')!r}, url.path {line.get('url.path')!r}")
        if span.attributes.get("url.path", expected) != expected:
            problems.append(f"{label}: span url.path {span.attributes['url.path']!r}")
    return problems


IHATEMONEY = CorpusApp(
    name="ihatemoney", target="ihatemoney.wsgi:application", script=ihatemoney_script,
    environ=ihatemoney_environ, prepare=[["{python}", "-c", "import ihatemoney.wsgi"]],  # its migrations, once
    ready_path="/healthcheck",  # its logging set-up silences gunicorn's "worker ready" lines
    secrets=(IHM_PASSWORD, IHM_WRONG_PASSWORD), auth=ihatemoney_checks,
    expect={"healthcheck": 200, "create-page": 200, "create-project": 302, "project": 200, "invite": 200,
            "join": 302, "project-as-guest": 200, "join-bad-token": 302, "project-as-stranger": 303,
            "authenticate-page": 200, "authenticate-failed": 200, "authenticate-succeeded": 302,
            "project-after-authenticate": 200, "no-such-page": 404})


# -- behind a proxy -----------------------------------------------------------------------------

def proxied_script(run: Run) -> None:
    browser = run.client()
    browser.get("index", "/", same_body=True)
    browser.get("index-mounted", "/shop/", same_body=True)
    browser.get("item", "/shop/items/3", same_body=True)
    browser.get("item-missing", "/shop/items/101", same_body=True)
    browser.get("middleware", "/middleware", same_body=True)
    browser.get("forwarded", "/", same_body=True,
                headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
                         "X-Forwarded-Host": "shop.example", "X-Forwarded-Prefix": "/edge"})
    browser.get("no-such-page", "/shop/no/such/page")


PROXIED = CorpusApp(
    name="proxied", target="tests.corpus_apps.proxied:app", script=proxied_script,
    expect={"index": 200, "index-mounted": 200, "item": 200, "item-missing": 404, "middleware": 200,
            "forwarded": 200, "no-such-page": 404})


# -- apiflask ------------------------------------------------------------------------------------

APIFLASK_SDIST = ("apiflask", "3.1.2", "9e19b554631a518a637c8a77887be37f37d46aeeee3d4a863bc4f6f0128bde23")


def apiflask_example() -> Path:
    return corpus.sdist_files(*APIFLASK_SDIST, ["examples/basic/app.py"]) / "examples" / "basic"


def apiflask_script(run: Run) -> None:
    client = run.client()
    client.get("hello", "/", same_body=True)
    client.get("pets", "/pets", same_body=True)
    client.get("pet", "/pets/1", same_body=True)
    client.get("pet-missing", "/pets/99", same_body=True)
    client.post("create-invalid", "/pets", json_body={"name": "a name far too long", "category": "fish"},
                same_body=True)
    client.post("create", "/pets", json_body={"name": "Rex", "category": "dog"})
    client.request("delete-missing", "DELETE", "/pets/99")
    client.get("openapi", "/openapi.json")  # (its servers name the port: not the same body)
    client.get("docs", "/docs")


APIFLASK = CorpusApp(
    name="apiflask", target="app:app", script=apiflask_script, cwd=apiflask_example,
    expect={"hello": 200, "pets": 200, "pet": 200, "pet-missing": 404, "create-invalid": 422, "create": 201,
            "delete-missing": 404, "openapi": 200, "docs": 200})


# -- Flask-RESTful -------------------------------------------------------------------------------

API_KEY = "Corpus-apikey-Zr81Xw"  # tests/corpus_apps/restful_docs.py
WRONG_API_KEY = "Corpus-wrong-apikey-Hh57"


def restful_script(run: Run) -> None:
    client = run.client()
    key = {"X-API-Key": API_KEY}
    client.get("list-without-key", "/todos", same_body=True)
    client.get("list-wrong-key", "/todos", headers={"X-API-Key": WRONG_API_KEY})
    client.get("list", "/todos", headers=key, same_body=True)
    client.get("todo", "/todos/todo1", headers=key, same_body=True)
    client.get("todo-missing", "/todos/todo99", headers=key, same_body=True)
    client.request("put", "PUT", "/todos/todo9", json_body={"task": "prove it"}, headers=key, same_body=True)
    client.get("no-such-page", "/no/such/page")


def restful_checks(attached: Attached) -> list[str]:
    """The 401 and 404 that its Resources abort with are answers, not errors (issue 24)."""
    problems = []
    for label in ("list-without-key", "list-wrong-key", "todo-missing"):
        sent = attached.run.by_label(label)
        errors = [line for line in attached.lines_of(sent) if line.get("level") == "error"]
        if errors:
            problems.append(f"{label} ({sent.status}): lines at level error: {[e['event'] for e in errors]}")
        if any(name == "flask.got_request_exception" or name == "exception" for name, _ in attached.span(sent).events):
            problems.append(f"{label} ({sent.status}): an exception on its span")
    return problems


RESTFUL = CorpusApp(
    name="restful", target="tests.corpus_apps.restful_docs:app", script=restful_script,
    secrets=(API_KEY, WRONG_API_KEY), auth=restful_checks,
    expect={"list-without-key": 401, "list-wrong-key": 401, "list": 200, "todo": 200, "todo-missing": 404,
            "put": 201, "no-such-page": 404})


APPS = {app.name: app for app in (SECURITY, APPBUILDER, IHATEMONEY, PROXIED, APIFLASK, RESTFUL)}
#: The package each app needs beyond the test extra (the [apps] extra: Flask 3.1 only).
NEEDS = {"flask-security": "flask_security", "appbuilder": "flask_appbuilder", "ihatemoney": "ihatemoney",
         "apiflask": "apiflask"}


# -- the tests ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plain_runs(tmp_path_factory: pytest.TempPathFactory):
    """Each app's run without flask-sigobs: served once, then compared with each launcher's run."""
    runs: dict[str, Run] = {}

    def plain(app: CorpusApp) -> Run:
        if app.name not in runs:
            with corpus.serve(app, tmp_path_factory.mktemp(f"{app.name}-plain"), None) as served:
                run = corpus.run_script(app, served)
            corpus.check_plain_run(app, run)
            runs[app.name] = run
        return runs[app.name]

    return plain


@pytest.mark.parametrize("launcher", list(corpus.LAUNCHERS))
@pytest.mark.parametrize("name", list(APPS))
def test_real_app_attached_untouched(plain_runs, tmp_path: Path, name: str, launcher: str):
    if name in NEEDS:
        require_app(NEEDS[name])
    if launcher == "opentelemetry-instrument" and NO_OTEL:
        pytest.skip(NO_OTEL)
    app = APPS[name]
    plain = plain_runs(app)
    service = f"corpus-{name}-{uuid.uuid4().hex[:6]}"
    with OtlpSink() as sink:
        with corpus.serve(app, tmp_path, launcher, sink, service) as served:
            run = corpus.run_script(app, served)
        attached = corpus.read_attached(app, launcher, service, run, served, sink)
    corpus.check_attached_run(plain, attached)


def test_the_corpus_checks_are_not_vacuous(tmp_path: Path):
    """A run that answered otherwise, or lost a line, or leaked a secret, fails the checks."""
    sent = corpus.Sent("only", "GET", "/x", 200, "c-1", "c-1", b"", False)
    plain = Run("http://127.0.0.1:1", tmp_path, sent=[sent])
    other = Run("http://127.0.0.1:1", tmp_path, sent=[corpus.Sent("only", "GET", "/x", 500, "c-1", "c-1", b"", False)],
                secrets={"s3cret-value"})
    app = CorpusApp(name="none", target="none:app", script=lambda run: None, expect={"only": 404})
    attached = Attached(app, "sigobs-run", "svc", other, [], [], b"", "... s3cret-value ...", "")
    with pytest.raises(AssertionError) as failed:
        corpus.check_attached_run(plain, attached)
    message = str(failed.value)
    assert "statuses differ" in message and "0 access lines" in message and "secret s3cret-valu" in message
    with pytest.raises(AssertionError, match="without flask-sigobs"):
        corpus.check_plain_run(app, plain)
