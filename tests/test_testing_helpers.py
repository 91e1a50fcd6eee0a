"""flask_sigobs.testing and its pytest plugin: capture what an app signals, in its own tests.

The capture is checked against the real outputs (the JSON lines of the log file and the spans of
the SDK's in-memory exporter); the plugin is run by ``pytester`` in projects of its own, so each
test there is a real pytest session with the plugin loaded from its entry point.
"""

from __future__ import annotations

import contextvars
import re
import subprocess
import sys
import threading
from pathlib import Path
from unittest import mock

import pytest
from blinker import Namespace
from flask import Flask, current_app, flash, render_template_string, request

from flask_sigobs import auth
from flask_sigobs.extension import AppRuntime
from flask_sigobs.testing import captured_events, captured_spans

pytest_plugins = ["pytester"]

ORIGINAL_DELIVER = AppRuntime.__dict__["_deliver"]
signals = Namespace()
order_placed = signals.signal("shop.order_placed")


def shop_app(name: str = "shop") -> Flask:
    app = Flask(name)

    @app.post("/login")
    def login():
        user = request.form.get("username", "")
        auth.login_failed.send(current_app._get_current_object(), user=user, reason="bad password",
                               password=request.form.get("password"))
        flash("Wrong username or password.", "error")
        return render_template_string("<p>{{ user }}</p>", user=user), 401

    @app.post("/orders")
    def order():
        order_placed.send(current_app._get_current_object(), order_id=7, items=("teapot", "lantern"))
        return {"id": 7}, 201

    @app.get("/boom")
    def boom():
        raise ValueError(f"could not charge card {request.headers.get('Authorization')}")

    @app.get("/async")
    async def in_a_coroutine():
        order_placed.send(current_app._get_current_object(), order_id=8)
        return "ok"

    @app.get("/thread")
    def in_a_thread():
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(order_placed.send, current_app._get_current_object()),
                                  kwargs={"order_id": 9})
        thread.start()
        thread.join()
        return "ok"

    return app


def observed_shop(observe, name: str = "shop", **config):
    observed = observe(shop_app(name), **config)
    observed.sigobs.observe(order_placed)
    return observed


# -- what is captured is what the outputs got ------------------------------------------------------

def test_each_event_is_its_json_line_and_carries_its_spans_ids(observe):
    observed = observed_shop(observe)
    client = observed.client()
    with captured_events(observed.app) as events:
        client.post("/login?next=/admin&token=t0ken-in-query", data={"username": "mallory", "password": "hunter2"})
        client.post("/orders")

    assert events.names() == ["flask.request_started", "auth.login_failed", "flask.message_flashed",
                              "flask.template_rendered", "flask.request_finished",
                              "flask.request_started", "shop.order_placed", "flask.request_finished"]
    lines = observed.lines()
    logged = [event for event in events if event.logged]
    # Every logged event is its JSON line, key for key, value for value, in the same order.
    assert [event.line() for event in logged] == lines
    assert [list(event.line()) for event in logged] == [list(line) for line in lines]
    # Events below SIGOBS_LOG_LEVEL (request_started, template_rendered: debug) are captured too.
    quiet = [event for event in events if not event.logged]
    assert [(event.name, event.level) for event in quiet] == [
        ("flask.request_started", "debug"), ("flask.template_rendered", "debug"), ("flask.request_started", "debug")]
    # The ids are those of the request's server span, which has each event as a span event.
    spans = {("%032x" % span.context.trace_id, "%016x" % span.context.span_id): span
             for span in observed.server_spans()}
    assert len(spans) == 2
    for event in events:
        span = spans[event.trace_id, event.span_id]
        assert (event.attributes["trace_id"], event.attributes["span_id"]) == (event.trace_id, event.span_id)
        assert event.name in [span_event.name for span_event in span.events]
    assert len({event.trace_id for event in events}) == 2
    failed = events.assert_emitted("auth.login_failed", {"enduser.id": "mallory"}, reason="bad password")
    assert (failed.level, failed.attributes["password"], failed.attributes["service.name"]) == (
        "warning", "[REDACTED]", "shop")
    # Values as a reader of the line gets them: the tuple is a JSON list.
    assert events.find("shop.order_placed").attributes["items"] == ["teapot", "lantern"]
    assert events.find("flask.request_finished", {"http.response.status_code": 401}).attributes["url.query"] \
        == "next=/admin&token=[REDACTED]"


def test_an_exception_event_carries_the_exception_scrubbed_of_the_requests_secrets(observe):
    observed = observed_shop(observe)
    observed.app.config["PROPAGATE_EXCEPTIONS"] = False
    with captured_events(observed.app) as events:
        response = observed.client().get("/boom", headers={"Authorization": "Bearer sk-live-0123456789"})
    assert response.status_code == 500
    event = events.assert_emitted("flask.got_request_exception", {"exception.type": "ValueError"})
    assert isinstance(event.exception, ValueError) and event.level == "error"
    assert "sk-live-0123456789" not in str(event.exception)
    assert events.assert_emitted("flask.request_finished", {"http.response.status_code": 500}).level == "error"
    events.assert_absent("sk-live-0123456789")
    assert [event.name for event in events if event.exception is not None] == ["flask.got_request_exception"]


def test_a_secret_sent_in_a_test_request_is_in_no_captured_attribute(observe):
    observed = observed_shop(observe, SIGOBS_SIGNALS="all")
    client = observed.client()
    client.set_cookie("session", "cookie-s3cret-value")
    with captured_events() as events:
        client.post("/login?api_key=query-s3cret-value", data={"username": "eve-the-user", "password": "form-s3cret-value"},
                    headers={"Authorization": "Basic aGVhZGVyLXMzY3JldA==", "X-CSRFToken": "csrf-s3cret-value"})
    assert len(events) > 5
    for secret in ("cookie-s3cret-value", "query-s3cret-value", "form-s3cret-value", "aGVhZGVyLXMzY3JldA==",
                   "csrf-s3cret-value"):
        events.assert_absent(secret)
    with pytest.raises(AssertionError, match=r"'eve-the-user' was captured in 1 place\(s\):\n"
                                             r"  auth.login_failed: enduser.id$"):
        events.assert_absent("eve-the-user")


# -- what a capture sees -----------------------------------------------------------------------------

def test_one_app_or_every_app_and_apps_made_inside_the_capture(observe):
    first, second = observed_shop(observe, "first"), observed_shop(observe, "second")
    with captured_events() as every, captured_events(first.app) as only_first:
        first.client().post("/orders")
        second.client().post("/orders")
        third = observed_shop(observe, "made_inside")  # an app factory called inside the capture
        third.client().post("/orders")
    services = lambda events: [e.attributes["service.name"] for e in events.all("shop.order_placed")]  # noqa: E731
    assert services(every) == ["first", "second", "made_inside"]
    assert services(only_first) == ["first"]
    assert only_first.other_apps == 6  # said in a failure message: "events of other apps were delivered"


def test_nested_captures_both_see_the_inner_events_and_the_outer_goes_on(observe):
    observed = observed_shop(observe)
    client = observed.client()
    with captured_events(observed.app) as outer:
        client.post("/orders")
        with captured_events(observed.app) as inner:
            client.get("/async")
        client.get("/thread")
    assert [e.attributes.get("order_id") for e in outer.all("shop.order_placed")] == [7, 8, 9]
    assert [e.attributes.get("order_id") for e in inner.all("shop.order_placed")] == [8]


def test_async_views_and_a_views_copied_context_thread_are_captured_with_their_request(observe):
    observed = observed_shop(observe)
    with captured_events(observed.app) as events:
        observed.client().get("/async")
        observed.client().get("/thread")
    for path, order_id in (("/async", 8), ("/thread", 9)):
        finished = events.assert_emitted("flask.request_finished", {"url.path": path})
        placed = events.assert_emitted("shop.order_placed", order_id=order_id)
        assert placed.trace_id == finished.trace_id is not None


def test_a_capture_opened_outside_any_app_context_sees_a_real_server_thread(observe):
    from .conftest import http

    observed = observed_shop(observe)
    with observed.serve() as base, captured_events() as events:  # no app context here
        assert http(base + "/orders", method="POST")[0] == 201
    events.assert_emitted("shop.order_placed", order_id=7)
    # a signal sent with the app as sender, outside any request and any context: captured as well
    with captured_events(observed.app) as events:
        order_placed.send(observed.app, order_id=10)
    assert events.assert_emitted("shop.order_placed", order_id=10).trace_id is None


# -- no capture, no cost ------------------------------------------------------------------------------

def test_the_delivery_is_the_original_whenever_no_capture_is_open(observe):
    observed = observed_shop(observe)
    assert AppRuntime.__dict__["_deliver"] is ORIGINAL_DELIVER
    assert ORIGINAL_DELIVER.__module__ == "flask_sigobs.extension"
    with captured_events():
        assert AppRuntime.__dict__["_deliver"] is not ORIGINAL_DELIVER
        with captured_spans(observed.app):
            pass
        assert AppRuntime.__dict__["_deliver"] is not ORIGINAL_DELIVER
    assert AppRuntime.__dict__["_deliver"] is ORIGINAL_DELIVER
    with pytest.raises(KeyError), captured_events(observed.app):
        raise KeyError("a failing test body")
    assert AppRuntime.__dict__["_deliver"] is ORIGINAL_DELIVER
    # and a closed capture keeps what it had, taking nothing more
    with captured_events(observed.app) as events:
        observed.client().post("/orders")
    observed.client().post("/orders")
    assert events.names() == ["flask.request_started", "shop.order_placed", "flask.request_finished"]


# -- bad input ------------------------------------------------------------------------------------------

def test_an_app_without_sigobs_a_proxy_outside_a_context_and_not_an_app_fail_clearly():
    bare = Flask("bare")
    with pytest.raises(RuntimeError, match=r"flask-sigobs is not attached to the app 'bare': call SigObs\(app\)"):
        with captured_events(bare):
            pass
    with pytest.raises(RuntimeError, match=r"outside an app context: pass the app itself, or call captured_events\(\)"):
        with captured_events(current_app):
            pass
    with pytest.raises(TypeError, match="takes a Flask app, not str"):
        with captured_events("bare"):  # type: ignore[arg-type]
            pass
    assert AppRuntime.__dict__["_deliver"] is ORIGINAL_DELIVER


def test_an_app_that_sigobs_run_attaches_on_its_first_request_is_attached_by_the_capture(tmp_path):
    from flask_sigobs import autoattach

    app = Flask("attached_late")
    app.config["SIGOBS_LOG_FILE"] = str(tmp_path / "late.log")
    app.route("/")(lambda: "ok")
    installed_before = autoattach.installed()
    autoattach.install()
    try:
        with captured_events(app) as events:
            app.test_client().get("/")
    finally:
        if not installed_before:
            autoattach.uninstall()
    assert app.extensions["sigobs"] is autoattach.shared_sigobs()
    events.assert_emitted("flask.request_finished", {"service.name": "attached_late"})
    autoattach.shared_sigobs().runtime(app).tracer_provider.shutdown()


def test_current_app_inside_an_app_context_is_that_app(observe):
    observed = observed_shop(observe)
    other = observed_shop(observe, "other")
    with observed.app.app_context(), captured_events(current_app) as events:
        observed.client().post("/orders")
        other.client().post("/orders")
    assert {e.attributes["service.name"] for e in events} == {"shop"}


def test_a_failed_assertion_lists_what_was_captured_and_what_differs(observe):
    observed = observed_shop(observe)
    with captured_events(observed.app) as events:
        observed.client().post("/login", data={"username": "mallory", "password": "x"})
    with pytest.raises(AssertionError) as failure:
        events.assert_emitted("auth.login_failed", {"enduser.id": "alice"}, reason="bad password", method=mock.ANY)
    message = str(failure.value)
    assert message.startswith("no auth.login_failed event with enduser.id='alice', reason='bad password', "
                              "method=<ANY> was captured (app 'shop', service 'shop').\n")
    assert "  #1: enduser.id='mallory', not 'alice'; no method\n" in message
    assert "captured 5 event(s):\n  #0 flask.request_started [debug] http.request.method='POST'" in message
    assert "#1 auth.login_failed [warning] enduser.id='mallory'" in message
    assert "trace_id" not in message  # the correlation fields are noise in a listing
    with pytest.raises(AssertionError, match=r"1 auth.login_failed event\(s\) with reason='bad password' "
                                             r"captured, none expected:\n"
                                             r"  <CapturedEvent auth.login_failed \[warning\] enduser.id='mallory'"):
        events.assert_not_emitted("auth.login_failed", reason="bad password")
    events.assert_not_emitted("auth.login_failed", reason="locked")
    assert events.find("auth.login_succeeded") is None and events.all("nothing") == []


def test_an_empty_capture_says_why_it_may_be_empty(observe):
    observed, other = observed_shop(observe), observed_shop(observe, "other")
    with captured_events(observed.app) as events:
        other.client().post("/orders")
    with pytest.raises(AssertionError, match=r"no event at all was captured.\n\(3 event\(s\) of other apps were "
                                             r"delivered meanwhile: is it the app the test sends its requests to\?\)"):
        events.assert_emitted("shop.order_placed")
    with captured_events() as events:
        Flask("unobserved").test_client().get("/")
    with pytest.raises(AssertionError, match=r"flask-sigobs delivered no event while capturing: is SigObs attached"):
        events.assert_emitted("flask.request_finished")


# -- spans ------------------------------------------------------------------------------------------------

def test_captured_spans_are_the_tests_and_the_apps_own_exporter_still_gets_them(observe):
    observed = observed_shop(observe)
    observed.client().post("/orders")  # before: not captured
    with captured_spans() as spans, captured_events():
        observed.client().post("/orders")
        observed.client().get("/async")
    observed.client().post("/orders")  # after: not captured
    assert [span.attributes["url.path"] for span in spans.server()] == ["/orders", "/async"]
    assert "shop.order_placed" in spans.event_names(spans.server()[0])
    assert spans.find(spans.names()[0]) is spans[0] and len(spans.all()) == len(spans) == 2
    assert len(observed.server_spans()) == 4  # the app's own exporter saw every span, as before


def test_spans_of_an_app_given_are_tapped_at_once(observe):
    observed = observed_shop(observe, SIGOBS_SIGNALS="-request_started,-request_finished")
    with captured_spans(observed.app) as spans:
        observed.client().get("/")  # a 404: no event at all is delivered, the span still ends
    assert [span.attributes["http.response.status_code"] for span in spans.server()] == [404]


# -- the pytest plugin, in pytest sessions of its own ----------------------------------------------------------

LEAKY_VIEWS = '''
import contextvars, threading
from blinker import Namespace
from flask import Flask, copy_current_request_context, current_app
from flask_sigobs import SigObs

late = Namespace().signal("late.event")
go = threading.Event()
threads = []

def make_app():
    app = Flask("leaky")
    sigobs = SigObs(app)
    sigobs.observe(late)

    @app.get("/copied")
    def copied():
        app_ = current_app._get_current_object()
        def later():
            go.wait(10)
            late.send(app_, via="copy_context")
        context = contextvars.copy_context()
        threads.append(threading.Thread(target=context.run, args=(later,)))
        threads[-1].start()
        return "ok"

    @app.get("/request-context")
    def request_context():
        app_ = current_app._get_current_object()
        @copy_current_request_context
        def later():
            go.wait(10)
            late.send(app_, via="copy_current_request_context")
        threads.append(threading.Thread(target=later))
        threads[-1].start()
        return "ok"

    @app.get("/async")
    async def coroutine():
        late.send(current_app._get_current_object(), via="async")
        return "ok"

    return app

app = make_app()
'''


def test_plugin_nothing_leaks_from_one_test_into_the_next(pytester):
    pytester.makepyfile(views=LEAKY_VIEWS)
    pytester.makepyfile(test_leak='''
        from views import app, go, threads

        def test_a_starts_threads_that_emit_later(sigobs_events):
            client = app.test_client()
            client.get("/copied"); client.get("/request-context"); client.get("/async")
            assert sigobs_events.all("late.event", via="async")
            assert not sigobs_events.all("late.event", via="copy_context")

        def test_b_sees_none_of_them(sigobs_events):
            go.set()
            for thread in threads:
                thread.join(10)
            app.test_client().get("/async")
            assert [e.attributes["via"] for e in sigobs_events.all("late.event")] == ["async"]
            assert sigobs_events.names() == ["flask.request_started", "late.event", "flask.request_finished"]

        def test_c_without_the_fixture_leaves_nothing_open():
            from flask_sigobs.extension import AppRuntime
            assert AppRuntime.__dict__["_deliver"].__module__ == "flask_sigobs.extension"
    ''')
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_plugin_with_pytest_flask_app_and_client_fixtures_and_an_app_factory(pytester):
    pytester.makeconftest('''
        import pytest
        from flask import Flask, current_app
        from flask_sigobs import SigObs, auth

        sigobs = SigObs()

        def create_app(config=None):
            app = Flask("factory_app")
            app.config.update(config or {})

            @app.post("/login")
            def login():
                auth.login_failed.send(current_app._get_current_object(), user="mallory", reason="bad password")
                return "no", 401

            sigobs.init_app(app)
            return app

        @pytest.fixture
        def app():
            return create_app({"TESTING": True})
    ''')
    pytester.makepyfile(test_with_pytest_flask='''
        from flask_sigobs.testing import captured_events

        def test_client_fixture_of_pytest_flask(client, sigobs_events, request):
            assert request.config.pluginmanager.has_plugin("flask")  # pytest-flask's client, from its plugin
            assert client.post("/login", data={"password": "pw-typed-in-test"}).status_code == 401
            sigobs_events.assert_emitted("auth.login_failed", {"enduser.id": "mallory"}, reason="bad password")
            sigobs_events.assert_absent("pw-typed-in-test")

        def test_spans_beside_pytest_flask(client, sigobs_spans):
            client.post("/login")
            (span,) = sigobs_spans.server()
            assert "auth.login_failed" in sigobs_spans.event_names(span)

        def test_the_app_fixture_inside_its_pushed_request_context(app, client):
            from flask import current_app
            with captured_events(current_app) as events:
                client.post("/login")
            assert events.find("auth.login_failed") is not None

        def test_a_failing_assertion_reads_well(client, sigobs_events):
            client.post("/login")
            sigobs_events.assert_emitted("auth.login_succeeded")
    ''')
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*sigobs_events.assert_emitted(\"auth.login_succeeded\")",
        "E*AssertionError: no auth.login_succeeded event was captured (every app).",
        "E*captured 3 event(s):",
        "E*#1 auth.login_failed [[]warning] enduser.id='mallory'*reason='bad password'",
    ])
    assert "testing.py" not in result.stdout.str()  # the helper's own frame is hidden


def test_plugin_is_registered_and_imports_nothing_heavy_until_used(pytester):
    pytester.makepyfile(test_light='''
        import sys

        def test_nothing_heavy_was_imported(request):
            assert request.config.pluginmanager.has_plugin("flask_sigobs")
            heavy = [name for name in ("flask", "opentelemetry", "flask_sigobs.testing", "flask_sigobs.extension")
                     if name in sys.modules]
            assert heavy == []
    ''')
    # pytest-flask imports Flask itself: switched off here, to see what our plugin imports.
    result = pytester.runpytest_subprocess("-p", "no:flask", "-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    fixtures = pytester.runpytest_subprocess("--fixtures", "-p", "no:randomly")
    fixtures.stdout.fnmatch_lines(["sigobs_events*", "*The events flask-sigobs delivers during the test*",
                                   "sigobs_spans*"])


def test_the_plugin_module_imports_only_pytest():
    code = ("import sys; import flask_sigobs.pytest_plugin; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'opentelemetry', 'structlog', "
            "'orjson', 'werkzeug') or m.startswith('flask_sigobs.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['flask_sigobs.pytest_plugin']"


def test_the_example_apps_own_tests_pass_in_a_pytest_of_their_own():
    """examples/test_app.py, run as a user's project runs its tests: a pytest process of its own,
    the plugin found through its entry point. (Not collected beside tests/: importing the example
    app attaches flask-sigobs at collection time, and the first attach in a process decides who
    owns logging and structlog, which tests here set up on purpose.)"""
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-m", "pytest", "examples", "-q", "-p", "no:cacheprovider"],
                            cwd=root, capture_output=True, text=True, timeout=300)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.fullmatch(r"\d+ passed in [\d.]+s", summary) and int(summary.split()[0]) >= 7, summary

