"""Auth signals, Flask-Login's signals and any observed blinker signal become events too."""

from __future__ import annotations

import pytest
from blinker import Namespace, Signal
from flask import Flask, current_app
from flask_login import LoginManager, UserMixin, login_user, logout_user

from flask_sigobs import SigObs, auth


class Member(UserMixin):
    def __init__(self, ident: str) -> None:
        self.id = ident


def auth_app() -> Flask:
    app = Flask("auth_app")

    @app.route("/login/<name>")
    def login(name: str):
        if name == "mallory":
            auth.login_failed.send(current_app._get_current_object(), user=name, reason="bad password",
                                   password="hunter2-typed")
            return "no", 401
        auth.login_succeeded.send(current_app._get_current_object(), user=Member(name), method="password")
        return "welcome"

    @app.route("/admin")
    def admin():
        auth.access_denied.send(current_app._get_current_object(), user="bob", permission="admin")
        return "forbidden", 403

    @app.route("/logout")
    def logout():
        auth.logged_out.send(current_app._get_current_object(), user="alice")
        return "bye"

    return app


def test_auth_signals_are_events_with_user_client_and_data(observe):
    observed = observe(auth_app())
    with observed.serve() as base:
        from .conftest import http

        for path in ("/login/alice", "/login/mallory", "/admin", "/logout"):
            http(base + path, headers={"User-Agent": "auth-agent"})

    ok = observed.events("auth.login_succeeded")[0]
    assert (ok["level"], ok["enduser.id"], ok["method"]) == ("info", "alice", "password")
    assert ok["client.address"] == "127.0.0.1" and ok["user_agent.original"] == "auth-agent"
    failed = observed.events("auth.login_failed")[0]
    assert (failed["level"], failed["enduser.id"], failed["reason"]) == ("warning", "mallory", "bad password")
    assert failed["password"] == "[REDACTED]"
    denied = observed.events("auth.access_denied")[0]
    assert (denied["level"], denied["permission"]) == ("warning", "admin")
    assert observed.events("auth.logged_out")[0]["enduser.id"] == "alice"

    # the access line of the login request names the user, and so does its span
    access = {line["url.path"]: line for line in observed.events("flask.request_finished")}
    assert access["/login/alice"]["enduser.id"] == "alice"
    spans = {span.attributes["url.path"]: span for span in observed.server_spans()}
    assert spans["/login/alice"].attributes["enduser.id"] == "alice"
    # a failed login names who was tried on its event, not on the span (issue 21.5)
    assert "enduser.id" not in spans["/login/mallory"].attributes
    event = next(e for e in spans["/login/mallory"].events if e.name == "auth.login_failed")
    assert event.attributes["enduser.id"] == "mallory" and event.attributes["password"] == "[REDACTED]"
    assert b"hunter2-typed" not in observed.raw_log()


def test_flask_login_signals_are_observed_without_app_code(observe):
    app = Flask("login_app")
    manager = LoginManager(app)
    manager.user_loader(lambda ident: Member(ident))

    @app.route("/in")
    def sign_in():
        login_user(Member("carol"))
        return "in"

    @app.route("/out")
    def sign_out():
        logout_user()
        return "out"

    observed = observe(app)
    client = observed.client()
    client.get("/in")
    client.get("/out")
    logged_in = observed.events("auth.user_logged_in")
    assert logged_in and logged_in[0]["enduser.id"] == "carol"
    assert observed.events("auth.user_logged_out")[0]["enduser.id"] == "carol"
    names = [e.name for span in observed.server_spans() for e in span.events]
    assert "auth.user_logged_in" in names and "auth.user_logged_out" in names
    # Flask-Login's current user names the access line of the logged-in request
    assert observed.events("flask.request_finished")[0]["enduser.id"] == "carol"


def test_observe_turns_any_blinker_signal_into_an_event(observe):
    shop = Namespace()
    saved = shop.signal("model-saved")
    anonymous = Signal()
    app = Flask("custom_app")

    @app.route("/save")
    def save():
        saved.send("Invoice", invoice_id=42, api_key="sk-live-123", lines=[1, 2, 3])
        anonymous.send(current_app._get_current_object(), amount=9.5)
        return "saved"

    observed = observe(app)
    observed.sigobs.observe(saved)
    observed.sigobs.observe(anonymous, event="payment.received", level="warning")
    observed.client().get("/save")

    (line,) = observed.events("model-saved")
    assert line["invoice_id"] == 42 and line["lines"] == [1, 2, 3]
    assert line["api_key"] == "[REDACTED]" and line["signal.sender"] == "Invoice"
    (payment,) = observed.events("payment.received")
    assert payment["level"] == "warning" and payment["amount"] == 9.5
    (span,) = observed.server_spans()
    event = next(e for e in span.events if e.name == "model-saved")
    assert event.attributes["invoice_id"] == 42 and tuple(event.attributes["lines"]) == (1, 2, 3)
    assert "sk-live-123" not in repr(span.to_json())


def test_observe_honours_sender_and_rejects_bad_arguments(observe):
    signal = Namespace().signal("only-from-a")
    app = Flask("sender_app")

    @app.route("/")
    def index():
        signal.send("a", n=1)
        signal.send("b", n=2)
        return "ok"

    observed = observe(app)
    observed.sigobs.observe(signal, sender="a")
    observed.client().get("/")
    assert [line["n"] for line in observed.events("only-from-a")] == [1]
    with pytest.raises(ValueError, match="level"):
        observed.sigobs.observe(signal, level="loud")
    with pytest.raises(ValueError, match="event="):
        observed.sigobs.observe(Signal())


def test_receivers_stay_connected_after_garbage_collection(observe):
    import gc

    signal = Namespace().signal("after-gc")
    app = Flask("gc_app")

    @app.route("/")
    def index():
        signal.send(current_app._get_current_object(), n=1)
        return "ok"

    observed = observe(app)
    observed.sigobs.observe(signal)
    gc.collect()
    observed.client().get("/")
    assert observed.events("after-gc") and observed.events("flask.request_finished")


def test_auth_events_outside_a_request_still_go_to_their_app(observe):
    observed = observe(auth_app())
    with observed.app.app_context():
        auth.login_failed.send(observed.app, user="cli-user", reason="expired")
    (line,) = observed.events("auth.login_failed")
    assert line["enduser.id"] == "cli-user" and "request.id" not in line


def test_an_unobserving_sigobs_ignores_other_apps(observe):
    first = observe(auth_app())
    other = Flask("not_observed")

    @other.route("/x")
    def x():
        auth.login_succeeded.send(other, user="zed")
        return "x"

    other.test_client().get("/x")
    assert first.events("auth.login_succeeded") == []
    assert SigObs  # the public name stays importable from the package
