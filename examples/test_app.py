"""The example app's own tests: what it must signal, asserted with flask-sigobs' test helpers.

These are the examples of docs/testing.md. ``sigobs_events`` holds the events flask-sigobs
delivered during the test; each has the fields of its JSON line as ``attributes``.
"""

from __future__ import annotations

from flask_sigobs.testing import captured_events


def log_in(client, username, password):
    return client.post("/login", data={"username": username, "password": password})


def test_a_failed_login_is_recorded_with_the_user_and_a_reason_and_no_password(client, sigobs_events):
    response = log_in(client, "alice", "not-her-password")

    assert response.status_code == 401
    failed = sigobs_events.assert_emitted("auth.login_failed", {"enduser.id": "alice"}, reason="bad password")
    assert failed.level == "warning"
    assert "password" not in failed.attributes
    sigobs_events.assert_absent("not-her-password")  # in no event at all, the access line included
    sigobs_events.assert_not_emitted("auth.login_succeeded")


def test_a_login_names_the_user_on_the_access_line(client, sigobs_events):
    log_in(client, "alice", "wonderland")

    sigobs_events.assert_emitted("auth.login_succeeded", {"enduser.id": "alice"}, method="password")
    sigobs_events.assert_emitted("auth.user_logged_in", {"enduser.id": "alice"})  # Flask-Login's own signal
    finished = sigobs_events.assert_emitted("flask.request_finished", {"url.path": "/login"})
    assert finished.attributes["enduser.id"] == "alice"
    assert finished.attributes["http.response.status_code"] == 302


def test_access_denied_says_which_permission(client, sigobs_events):
    log_in(client, "alice", "wonderland")

    assert client.get("/admin").status_code == 403
    sigobs_events.assert_emitted("auth.access_denied", {"enduser.id": "alice"}, permission="admin")


def test_the_custom_signal_is_an_event_of_the_request(client, sigobs_events):
    assert client.get("/api/items/1").json == {"id": 1, "name": "teapot"}

    viewed = sigobs_events.assert_emitted("shop.item_viewed", item_id=1, name="teapot")
    finished = sigobs_events.assert_emitted("flask.request_finished", {"http.route": "/api/items/<int:item_id>"})
    assert viewed.trace_id == finished.trace_id  # one request, one trace
    assert sigobs_events.names() == ["flask.request_started", "shop.item_viewed", "flask.request_finished"]


def test_a_crash_is_an_error_event_with_the_exception(app, client, sigobs_events):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a 500 response, as in production, not a raise in the test

    assert client.get("/api/reports/2026").status_code == 500
    crash = sigobs_events.assert_emitted("flask.got_request_exception", {"exception.type": "RuntimeError"})
    assert crash.level == "error"
    assert str(crash.exception) == "report generator crashed for 2026"
    sigobs_events.assert_emitted("flask.request_finished", {"http.response.status_code": 500})


def test_the_request_span_carries_the_events(client, sigobs_spans):
    client.get("/api/items/2")

    (span,) = sigobs_spans.server()
    assert span.name == "GET /api/items/<int:item_id>"
    assert "shop.item_viewed" in sigobs_spans.event_names(span)


def test_one_app_with_the_context_manager(app, client):
    # Without pytest, or around part of a test only: the same collection, for this app alone.
    with captured_events(app) as events:
        log_in(client, "bob", "wrong")
    events.assert_emitted("auth.login_failed", {"enduser.id": "bob"})
    assert events.find("flask.message_flashed").attributes["flask.flash.category"] == "error"
