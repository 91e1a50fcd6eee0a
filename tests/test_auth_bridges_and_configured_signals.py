"""Logins seen wherever they come from: Flask-Security-Too, an app's vendored Flask-Login, signals
named in configuration; and who the span and the access line name (issues 21 and 24).

Every app here is real: Flask-Security-Too with its SQLAlchemy datastore on in-memory SQLite, a
copy of Flask-Login's package under another name, signal modules written to a temporary folder.
"""

from __future__ import annotations

import logging
import shutil
import textwrap
from pathlib import Path
from typing import Any

import flask
import flask_login
import pytest
from flask import Flask, current_app, session
from flask_login import UserMixin

from flask_sigobs import ConfigError, SigObs, auth, autoattach

from . import attach_apps
from .extras import require_app

PASSWORD = "correct-horse-battery-9"
NEW_PASSWORD = "tr0ub4dor-and-3-more"
WRONG_PASSWORD = "wrong-guess-4711"
AGENT = "bridge-test-agent/1.0"
SECRETS = (PASSWORD, NEW_PASSWORD, WRONG_PASSWORD)


def assert_no_secret(observed: Any) -> None:
    raw = observed.raw_log().decode()
    spans = "".join(span.to_json() for span in observed.spans())
    for secret in SECRETS:
        assert secret not in raw and secret not in spans, secret


def spans_by_path(observed: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for span in observed.server_spans():
        out.setdefault(span.attributes["url.path"], []).append(span)
    return out


def span_events(span: Any, name: str) -> list[Any]:
    return [event for event in span.events if event.name == name]


def access_line(observed: Any, path: str, n: int = 0) -> dict[str, Any]:
    return [line for line in observed.events("flask.request_finished") if line["url.path"] == path][n]


# -- Flask-Security-Too ------------------------------------------------------------------------


def security_app() -> tuple[Flask, Any]:
    """A Flask-Security-Too app as its quick start makes one: SQLAlchemy models, registration,
    password change, and a login form that says when the user name is unknown (docs/events.md)."""
    require_app("flask_security")
    import flask_security
    from flask_security.models import fsqla_v3 as fsqla
    from flask_sqlalchemy import SQLAlchemy

    app = Flask("security_app")
    app.config.update(
        SECRET_KEY="fs-test-secret", SECURITY_PASSWORD_SALT="fs-test-salt",
        SECURITY_PASSWORD_HASH="pbkdf2_sha512", SQLALCHEMY_DATABASE_URI="sqlite://",
        WTF_CSRF_ENABLED=False, SECURITY_REGISTERABLE=True, SECURITY_SEND_REGISTER_EMAIL=False,
        SECURITY_CHANGEABLE=True, SECURITY_SEND_PASSWORD_CHANGE_EMAIL=False,
        SECURITY_EMAIL_VALIDATOR_ARGS={"check_deliverability": False},  # no DNS: loopback only
    )
    db = SQLAlchemy(app)
    fsqla.FsModels.set_db_info(db)

    class Role(db.Model, fsqla.FsRoleMixin):
        pass

    class User(db.Model, fsqla.FsUserMixin):
        pass

    class LoginForm(flask_security.LoginForm):
        """What Flask-Security-Too does not send: a failed login for an unknown user name."""

        def validate(self, **kwargs: Any) -> bool:
            ok = super().validate(**kwargs)
            if not ok and self.user is None and self.email.data:
                auth.login_failed.send(current_app._get_current_object(), user=self.email.data,
                                       reason="unknown_user")
            return ok

    datastore = flask_security.SQLAlchemyUserDatastore(db, User, Role)
    flask_security.Security(app, datastore, login_form=LoginForm)

    @app.route("/account")
    @flask_security.auth_required()
    def account():
        return f"hello {flask_security.current_user.email}"

    with app.app_context():
        db.create_all()
    return app, db


def test_flask_security_too_signals_are_auth_events_without_app_code(observe):
    app, _ = security_app()
    observed = observe(app)
    client = observed.client()
    headers = {"User-Agent": AGENT}
    form = {"email": "ada@example.com", "password": PASSWORD, "password_confirm": PASSWORD}
    assert client.post("/register", data=form, headers=headers).status_code == 302
    client.post("/logout", headers=headers)
    client.post("/login", data={"email": "ada@example.com", "password": WRONG_PASSWORD}, headers=headers)
    client.post("/login", data={"email": "nobody@example.com", "password": WRONG_PASSWORD}, headers=headers)
    assert client.get("/account", headers=headers).status_code == 302  # to the login page
    assert client.post("/login", data={"email": "ada@example.com", "password": PASSWORD},
                       headers=headers).status_code == 302
    assert client.get("/account", headers=headers).status_code == 200
    assert client.post("/change", data={"password": PASSWORD, "new_password": NEW_PASSWORD,
                                        "new_password_confirm": NEW_PASSWORD}, headers=headers).status_code == 302
    client.post("/logout", headers=headers)

    (registered,) = observed.events("auth.user_registered")
    assert registered["level"] == "info" and registered["enduser.id"] == "ada@example.com"
    assert not {"form_data", "confirm_token", "confirmation_token"} & set(registered)  # never even read

    (failed,) = observed.events("auth.user_failed_authn")
    assert (failed["level"], failed["enduser.id"], failed["auth_type"], failed["tfa"]) == ("warning", "ada@example.com", "password", False)
    assert failed["client.address"] == "127.0.0.1" and failed["user_agent.original"] == AGENT
    assert failed["trace_id"] and failed["request.id"]

    # Flask-Security-Too sends nothing for an unknown user name: the app's own login form does
    # (a name that matches no account is where people type their password: the line says the
    # audit trail's keyed hash of it, never the name; docs/audit.md)
    (unknown,) = observed.events("auth.login_failed")
    assert (unknown["level"], unknown["reason"]) == ("warning", "unknown_user")
    assert unknown["enduser.id"].startswith("hash:") and "nobody@example.com" not in observed.log_path.read_text()

    (unauthenticated,) = observed.events("auth.user_unauthenticated")
    assert unauthenticated["level"] == "warning" and "enduser.id" not in unauthenticated

    authenticated = observed.events("auth.user_authenticated")
    assert [line["authn_via"] for line in authenticated] == [["register"], ["password"], ["change"]]
    assert all(line["level"] == "info" and line["enduser.id"] == "ada@example.com" for line in authenticated)
    (changed,) = observed.events("auth.password_changed")
    assert changed["enduser.id"] == "ada@example.com" and changed["level"] == "info"

    # the access line and the span of each request name the same user, and only a real one
    logins = spans_by_path(observed)["/login"]
    lines = [line for line in observed.events("flask.request_finished") if line["url.path"] == "/login"]
    assert [line.get("enduser.id") for line in lines] == [None, None, "ada@example.com"]
    assert [span.attributes.get("enduser.id") for span in logins] == [None, None, "ada@example.com"]
    assert span_events(logins[0], "auth.user_failed_authn")[0].attributes["enduser.id"] == "ada@example.com"
    assert access_line(observed, "/account", 1)["enduser.id"] == "ada@example.com"
    assert access_line(observed, "/change")["enduser.id"] == "ada@example.com"
    logouts = [line for line in observed.events("flask.request_finished") if line["url.path"] == "/logout"]
    assert [line.get("enduser.id") for line in logouts] == ["ada@example.com", "ada@example.com"]
    assert [span.attributes.get("enduser.id") for span in spans_by_path(observed)["/logout"]] == ["ada@example.com", "ada@example.com"]
    assert_no_secret(observed)


def test_flask_security_users_are_named_by_their_email_not_their_session_uniquifier(observe):
    app, db = security_app()
    observed = observe(app)
    client = observed.client()
    form = {"email": "bo@example.com", "password": PASSWORD, "password_confirm": PASSWORD}
    client.post("/register", data=form)
    with app.app_context():
        uniquifier = app.extensions["security"].datastore.find_user(email="bo@example.com").fs_uniquifier
    raw = observed.raw_log().decode()
    assert observed.events("auth.user_logged_in")[0]["enduser.id"] == "bo@example.com"
    assert uniquifier not in raw


def test_the_flask_security_bridge_keeps_only_the_data_it_lists(observe):
    """Its token senders pass the one-time code itself; user_registered the whole form."""
    require_app("flask_security")
    import flask_security.signals as fs

    app = Flask("fs_signals")

    @app.route("/send")
    def send():
        fs.tf_security_token_sent.send(app, user="eve", method="sms", token="493817", login_token="493817")
        fs.user_registered.send(app, user="eve", confirm_token="ct-secret",
                                form_data={"email": "eve@example.com", "password": PASSWORD})
        fs.reset_password_instructions_sent.send(app, user="eve", token="rt-secret", reset_token="rt-secret")
        return "sent"

    observed = observe(app, SIGOBS_LOG_LEVEL="debug")
    observed.client().get("/send")
    (code,) = observed.events("auth.tf_security_token_sent")
    assert code["level"] == "debug" and code["method"] == "sms" and "token" not in code
    raw = observed.raw_log().decode() + "".join(span.to_json() for span in observed.spans())
    for secret in ("493817", "ct-secret", "rt-secret", PASSWORD):
        assert secret not in raw
    (reset,) = observed.events("auth.reset_password_instructions_sent")
    assert reset["enduser.id"] == "eve"
    (span,) = observed.server_spans()
    assert "enduser.id" not in span.attributes  # anyone may ask for a reset of eve's password


# -- Flask-Login: who the request was made by ----------------------------------------------------


class Member(UserMixin):
    def __init__(self, ident: str) -> None:
        self.id = ident


def login_app(manager_module: Any = flask_login, name: str = "login_app") -> Flask:
    """Flask-Login's usual app, written against ``manager_module`` (Flask-Login, or a copy of it)."""
    app = Flask(name)
    app.config["SECRET_KEY"] = "login-secret"
    manager = manager_module.LoginManager(app)
    manager.user_loader(lambda ident: Member(ident))

    @app.route("/in/<name>")
    def sign_in(name: str):
        manager_module.login_user(Member(name), remember=True)
        return "in"

    @app.route("/out")
    def sign_out():
        manager_module.logout_user()
        return "out"

    @app.route("/cart")
    def cart():
        session["cart"] = "3 lanterns"  # an anonymous session: Flask-Login's session protection fires
        return str(manager_module.current_user.is_authenticated)

    @app.route("/private")
    @manager_module.login_required
    def private():
        return "private"

    @app.before_request
    def touch_user():  # what many apps do: every request loads the user
        manager_module.current_user.is_authenticated

    @app.route("/health")
    def health():
        auth.login_succeeded.send(app, user="probe")
        return "ok"

    return app


def test_the_logout_access_line_names_the_user_like_its_span(observe):
    observed = observe(login_app())
    client = observed.client()
    client.get("/in/carol")
    client.get("/out")
    line = access_line(observed, "/out")
    (span,) = spans_by_path(observed)["/out"]
    assert observed.events("auth.user_logged_out")[0]["enduser.id"] == "carol"
    assert line["enduser.id"] == "carol" and span.attributes["enduser.id"] == "carol"


def test_session_protected_is_debug_and_debug_auth_events_write_no_line_at_info(observe):
    observed = observe(login_app())
    client = observed.client()
    for _ in range(3):
        client.get("/cart")
    assert observed.events("auth.session_protected") == []
    assert [line["event"] for line in observed.lines()] == ["flask.request_finished"] * 3
    spans = spans_by_path(observed)["/cart"]
    assert sum(len(span_events(span, "auth.session_protected")) for span in spans) == 2  # still on the span


def test_session_protected_lines_are_written_at_debug(observe):
    observed = observe(login_app(), SIGOBS_LOG_LEVEL="debug")
    client = observed.client()
    client.get("/cart")
    client.get("/cart")
    assert [line["level"] for line in observed.events("auth.session_protected")] == ["debug"]


def test_a_remembered_user_names_the_request_without_a_line_for_the_cookie(observe):
    observed = observe(login_app())
    first = observed.client()
    first.get("/in/dora")
    remember = first.get_cookie("remember_token")
    later = observed.client()
    later.set_cookie("remember_token", remember.value)
    assert later.get("/private").status_code == 200
    assert observed.events("auth.user_loaded_from_cookie") == []  # debug
    (span,) = spans_by_path(observed)["/private"]
    assert span_events(span, "auth.user_loaded_from_cookie")
    assert access_line(observed, "/private")["enduser.id"] == "dora" == span.attributes["enduser.id"]


def test_every_event_of_an_excluded_request_is_excluded(observe):
    """/health is excluded by default: its auth events (the app's before_request loading the
    user, the view's own) and custom events write no line and touch no span."""
    from blinker import Namespace

    probe = Namespace().signal("probe-ran")
    app = login_app()

    @app.after_request
    def after(response: Any) -> Any:
        probe.send(app, path=flask.request.path)
        return response

    observed = observe(app, SIGOBS_LOG_LEVEL="debug")
    observed.sigobs.observe(probe)
    client = observed.client()
    client.get("/in/erin")
    before = observed.lines()
    for _ in range(2):
        assert client.get("/health").status_code == 200
    after_lines = observed.lines()[len(before):]
    assert after_lines == [], after_lines
    assert "/health" not in spans_by_path(observed)
    client.get("/private")  # not excluded: the same signals are events there
    assert observed.events("probe-ran")[-1]["path"] == "/private"


# -- configured signals: SIGOBS_AUTH_SIGNALS, SIGOBS_OBSERVE -----------------------------------


@pytest.fixture
def vendored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Flask-Login's package copied as ``acme_vendor.login``, as apps that vendor it ship it."""
    package = tmp_path / "acme_vendor"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copytree(Path(flask_login.__file__).parent, package / "login",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module("acme_vendor.login")
    assert module.signals.user_logged_in is not flask_login.signals.user_logged_in
    yield module
    forget_modules("acme_vendor")


VENDORED = ("acme_vendor.login.signals:user_logged_in, acme_vendor.login.signals:user_logged_out,"
            "acme_vendor.login.signals:user_unauthorized")


def test_a_vendored_flask_login_is_seen_through_sigobs_auth_signals(observe, vendored):
    observed = observe(login_app(vendored, "vendored_app"), SIGOBS_AUTH_SIGNALS=VENDORED)
    client = observed.client()
    headers = {"User-Agent": AGENT}
    client.get("/private", headers=headers)
    client.get("/in/frank", headers=headers)
    client.get("/out", headers=headers)

    (logged_in,) = observed.events("auth.user_logged_in")
    assert (logged_in["level"], logged_in["enduser.id"]) == ("info", "frank")
    assert logged_in["client.address"] == "127.0.0.1" and logged_in["user_agent.original"] == AGENT
    assert "signal.sender" not in logged_in
    (unauthorized,) = observed.events("auth.user_unauthorized")
    assert unauthorized["level"] == "warning"
    assert observed.events("auth.user_logged_out")[0]["enduser.id"] == "frank"
    spans = spans_by_path(observed)
    assert spans["/in/frank"][0].attributes["enduser.id"] == "frank"
    assert access_line(observed, "/in/frank")["enduser.id"] == "frank"
    assert access_line(observed, "/out")["enduser.id"] == "frank" == spans["/out"][0].attributes["enduser.id"]
    assert span_events(spans["/private"][0], "auth.user_unauthorized")


def test_the_vendored_copy_is_unseen_without_the_key(observe, vendored):
    observed = observe(login_app(vendored, "unconfigured_vendored_app"))
    observed.client().get("/in/gina")
    assert observed.events("auth.user_logged_in") == []


SIGNALS_MODULE = '''
from blinker import Namespace

ours = Namespace()
sso_authenticated = ours.signal("sso-authenticated")
login_denied = ours.signal("login-denied")
mfa_enrolled = ours.signal("mfa-enrolled")
order_placed = ours.signal("order-placed")
refunded = ours.signal("refunded")
not_a_signal = 42
'''


@pytest.fixture
def acme_signals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    (tmp_path / "acme_signals.py").write_text(textwrap.dedent(SIGNALS_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    yield importlib.import_module("acme_signals")
    forget_modules("acme_signals")


def forget_modules(prefix: str) -> None:
    """Each test imports its own copy from its own folder."""
    import sys

    for name in [name for name in sys.modules if name == prefix or name.startswith(prefix + ".")]:
        del sys.modules[name]


class SsoUser:
    def __init__(self, ident: str) -> None:
        self.ident = ident

    def get_id(self) -> str:
        return self.ident


def test_an_apps_own_auth_signals_follow_the_documented_rule(observe, acme_signals):
    app = Flask("own_auth")

    @app.route("/sso")
    def sso():
        acme_signals.sso_authenticated.send(SsoUser("hana"))  # the user as the sender
        return "in"

    @app.route("/denied")
    def denied():
        acme_signals.login_denied.send(app, user="ivan", password=WRONG_PASSWORD, reason="locked")
        return "no", 401

    @app.route("/mfa")
    def mfa():
        acme_signals.mfa_enrolled.send(app, user="hana", method="totp")
        return "ok"

    observed = observe(app, SIGOBS_AUTH_SIGNALS="acme_signals:sso_authenticated,acme_signals:login_denied,"
                                                "acme_signals:mfa_enrolled=auth.mfa.enrolled")
    client = observed.client()
    for path in ("/sso", "/denied", "/mfa"):
        client.get(path, headers={"User-Agent": AGENT})
    spans = spans_by_path(observed)

    (sso,) = observed.events("auth.sso_authenticated")
    assert (sso["level"], sso["enduser.id"], sso["user_agent.original"]) == ("info", "hana", AGENT)
    assert spans["/sso"][0].attributes["enduser.id"] == "hana" == access_line(observed, "/sso")["enduser.id"]

    (denied,) = observed.events("auth.login_denied")
    assert (denied["level"], denied["enduser.id"], denied["reason"]) == ("warning", "ivan", "locked")
    assert denied["password"] == "[REDACTED]"
    assert "enduser.id" not in spans["/denied"][0].attributes
    assert "enduser.id" not in access_line(observed, "/denied")

    (mfa,) = observed.events("auth.mfa.enrolled")
    assert (mfa["level"], mfa["method"], mfa["enduser.id"]) == ("info", "totp", "hana")
    assert "enduser.id" not in spans["/mfa"][0].attributes  # neither a login nor a logout
    assert_no_secret(observed)


def test_sigobs_observe_observes_as_observe_does_from_app_config_or_environment(observe, acme_signals, monkeypatch):
    app = Flask("observe_key")

    @app.route("/buy")
    def buy():
        acme_signals.order_placed.send("checkout", order_id=7, api_key="sk-live-9")
        acme_signals.refunded.send(app, amount=2.5)
        return "bought"

    monkeypatch.setenv("SIGOBS_OBSERVE", "acme_signals:order_placed=shop.order_placed, acme_signals:refunded")
    observed = observe(app)
    observed.client().get("/buy")
    (order,) = observed.events("shop.order_placed")
    assert (order["level"], order["order_id"], order["signal.sender"]) == ("info", 7, "checkout")
    assert order["api_key"] == "[REDACTED]" and "client.address" not in order
    (refund,) = observed.events("refunded")  # the signal's own name, as observe() names it
    assert refund["amount"] == 2.5
    (span,) = observed.server_spans()
    assert {"shop.order_placed", "refunded"} <= {event.name for event in span.events}


def test_a_configured_name_wins_over_a_bridge_for_its_app_only(observe):
    renamed = observe(login_app(name="renamed_app"),
                      SIGOBS_AUTH_SIGNALS="flask_login.signals:user_logged_in=auth.signed_in")
    plain = observe(login_app(name="plain_app"), sigobs=renamed.sigobs)
    renamed.client().get("/in/jo")
    plain.client().get("/in/kim")
    assert [line["enduser.id"] for line in renamed.events("auth.signed_in")] == ["jo"]
    assert renamed.events("auth.user_logged_in") == []
    assert [line["enduser.id"] for line in plain.events("auth.user_logged_in")] == ["kim"]
    assert plain.events("auth.signed_in") == []


@pytest.mark.parametrize(("key", "value", "said"), [
    ("SIGOBS_AUTH_SIGNALS", "acme_nowhere.signals:user_logged_in", "cannot import 'acme_nowhere.signals'"),
    ("SIGOBS_AUTH_SIGNALS", "acme_signals:no_such_signal", "'acme_signals:no_such_signal' does not exist"),
    ("SIGOBS_OBSERVE", "acme_signals:not_a_signal", "'acme_signals:not_a_signal' is a int, not a blinker signal"),
    ("SIGOBS_OBSERVE", "acme_signals.order_placed", "is not an import path"),
    ("SIGOBS_OBSERVE", "acme_signals:refunded=has space", "is not an event name"),
])
def test_a_path_that_does_not_resolve_fails_at_init_app_naming_key_and_path(acme_signals, key, value, said):
    app = Flask("bad_path")
    app.config[key] = value
    with pytest.raises(ConfigError) as raised:
        SigObs(app)
    assert str(raised.value).startswith(key) and said in str(raised.value)
    assert "sigobs" not in app.extensions


def test_the_launchers_say_an_unresolved_path_once_and_the_app_keeps_serving(tmp_path, monkeypatch, caplog):
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SIGOBS_AUTH_SIGNALS", "acme_gone.login.signals:user_logged_in")
    autoattach.install()
    try:
        app = attach_apps.create_app("vendored_gone")
        app.config["SIGOBS_LOG_FILE"] = str(tmp_path / "gone.log")
        with caplog.at_level(logging.ERROR, logger="flask_sigobs"):
            statuses = [app.test_client().get("/items/1").status_code for _ in range(3)]
    finally:
        autoattach.uninstall()
    assert statuses == [200, 200, 200]
    said = [record.getMessage() for record in caplog.records if record.name == "flask_sigobs"]
    assert len(said) == 1, said
    assert "SIGOBS_AUTH_SIGNALS" in said[0] and "acme_gone.login.signals" in said[0]
    assert "SIGOBS_AUTH_SIGNALS" in autoattach.failure(app)


def test_the_launchers_see_a_vendored_flask_login_named_in_the_environment(tmp_path, monkeypatch, vendored):
    """Zero code: the app knows nothing of flask-sigobs, the environment names its vendored signals."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from .conftest import Observed

    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SIGOBS_AUTH_SIGNALS", VENDORED)
    autoattach.install()
    try:
        app = login_app(vendored, "launched_vendored_app")
        exporter, log_path = InMemorySpanExporter(), tmp_path / "launched.log"
        app.config.update(SIGOBS_SPAN_EXPORTER=exporter, SIGOBS_LOG_FILE=str(log_path))
        client = app.test_client()
        client.get("/in/nell")
        client.get("/out")
    finally:
        autoattach.uninstall()
    observed = Observed(app, app.extensions["sigobs"], exporter, log_path)
    try:
        assert [line["enduser.id"] for line in observed.events("auth.user_logged_in")] == ["nell"]
        assert access_line(observed, "/out")["enduser.id"] == "nell"
        assert spans_by_path(observed)["/in/nell"][0].attributes["enduser.id"] == "nell"
    finally:
        observed.sigobs.runtime(app).tracer_provider.shutdown()


def test_own_auth_signals_name_the_span_only_on_success(observe):
    app = Flask("own_signals")

    @app.route("/try/<name>")
    def attempt(name: str):
        auth.login_failed.send(app, user=name, reason="bad password")
        if name == "lee":
            auth.login_succeeded.send(app, user=name)
        return "tried"

    observed = observe(app)
    client = observed.client()
    client.get("/try/mallory")
    client.get("/try/lee")
    spans = spans_by_path(observed)
    assert "enduser.id" not in spans["/try/mallory"][0].attributes
    assert "enduser.id" not in access_line(observed, "/try/mallory")
    assert span_events(spans["/try/mallory"][0], "auth.login_failed")[0].attributes["enduser.id"] == "mallory"
    assert spans["/try/lee"][0].attributes["enduser.id"] == "lee" == access_line(observed, "/try/lee")["enduser.id"]


def test_the_old_bridge_module_still_imports():
    from flask_sigobs import flask_login_bridge

    names = [name for _, name, _ in flask_login_bridge.signals()]
    assert "auth.user_logged_in" in names
    assert flask_login_bridge.SIGNAL_LEVELS["session_protected"] == logging.DEBUG
