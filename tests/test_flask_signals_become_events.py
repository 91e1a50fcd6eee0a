"""Every Flask signal becomes a JSON line and a span event on its request's server span."""

from __future__ import annotations

import logging

import pytest
from flask import Flask, abort, flash, render_template_string
from opentelemetry.trace import StatusCode

from flask_sigobs import catalogue

from .conftest import http


def shop_app() -> Flask:
    app = Flask("shop")

    @app.route("/items/<int:item_id>")
    def item(item_id: int):
        flash("added to basket", "success")
        return render_template_string("item {{ id }} {{ secret_note }}", id=item_id, secret_note="ctx-value-42")

    @app.route("/missing")
    def missing():
        abort(404)

    @app.route("/teapot")
    def teapot():
        return "short and stout", 503

    @app.route("/boom")
    def boom():
        raise ValueError("the report generator crashed")

    return app


def test_default_settings_cost_one_info_line_per_request(observe):
    observed = observe(shop_app())
    with observed.serve() as base:
        status, headers, _ = http(f"{base}/items/7?colour=red", headers={"User-Agent": "pytest-agent"})
    assert status == 200
    lines = observed.lines()
    names = [line["event"] for line in lines]
    # request_started and template_rendered are debug by default; the flash is worth a line.
    assert names == ["flask.message_flashed", "flask.request_finished"]

    access = lines[-1]
    assert access["level"] == "info"
    assert access["http.request.method"] == "GET"
    assert access["http.route"] == "/items/<int:item_id>"
    assert access["url.path"] == "/items/7"
    assert access["url.query"] == "colour=red"
    assert access["http.response.status_code"] == 200
    assert access["http.response.body.size"] == len("item 7 ctx-value-42")
    assert access["duration_ms"] > 0
    assert access["client.address"] == "127.0.0.1"
    assert access["user_agent.original"] == "pytest-agent"
    assert access["request.id"] == headers["X-Request-ID"]
    assert access["service.name"] == "shop"
    assert access["timestamp"].endswith("Z") and "T" in access["timestamp"]
    assert list(access)[:3] == ["timestamp", "level", "event"]


def test_every_enabled_signal_lands_on_the_request_span_even_before_and_after_it_runs(observe):
    observed = observe(shop_app(), SIGOBS_SIGNALS="all", SIGOBS_LOG_LEVEL="debug")
    with observed.serve() as base:
        assert http(f"{base}/items/3")[0] == 200

    expected = ["flask.appcontext_pushed", "flask.request_started", "flask.message_flashed",
                "flask.before_render_template", "flask.template_rendered", "flask.request_finished",
                "flask.request_tearing_down", "flask.appcontext_tearing_down", "flask.appcontext_popped"]
    (span,) = observed.server_spans()
    assert [event.name for event in span.events] == expected
    assert [line["event"] for line in observed.lines()] == expected

    trace_id = format(span.context.trace_id, "032x")
    span_id = format(span.context.span_id, "016x")
    for line in observed.lines():
        assert (line["trace_id"], line["span_id"]) == (trace_id, span_id), line["event"]
    # events fired before the span started and after it "ended" keep their real time order
    times = [event.timestamp for event in span.events]
    assert times == sorted(times)
    assert span.start_time <= times[0] and times[-1] <= span.end_time


def test_signals_can_be_switched_off_and_levels_changed(observe):
    observed = observe(shop_app(), SIGOBS_SIGNALS="-message_flashed,+request_tearing_down",
                       SIGOBS_SIGNAL_LEVELS="request_tearing_down=warning")
    with observed.serve() as base:
        http(f"{base}/items/1")
    names = [line["event"] for line in observed.lines()]
    assert "flask.message_flashed" not in names
    assert observed.events("flask.request_tearing_down")[0]["level"] == "warning"
    span_events = [event.name for event in observed.server_spans()[0].events]
    assert "flask.message_flashed" not in span_events
    assert "flask.request_started" in span_events and "flask.template_rendered" in span_events


def test_template_events_carry_the_template_name_never_its_context(observe):
    app = shop_app()
    app.jinja_loader = __import__("jinja2").DictLoader({"item.html": "{{ price }}"})

    @app.route("/page")
    def page():
        return render_template_string("{% include 'item.html' %}", price="ctx-price-99")

    observed = observe(app, SIGOBS_SIGNALS="+before_render_template", SIGOBS_LOG_LEVEL="debug")
    observed.client().get("/page")
    rendered = observed.events("flask.template_rendered")
    assert [line["template.name"] for line in rendered] == ["<string>"]
    assert observed.events("flask.before_render_template")
    assert b"ctx-price-99" not in observed.raw_log()
    for span in observed.spans():
        for event in span.events:
            assert "ctx-price-99" not in repr(dict(event.attributes))


def test_flash_events_carry_the_category(observe):
    observed = observe(shop_app())
    observed.client().get("/items/2")
    (flashed,) = observed.events("flask.message_flashed")
    assert flashed["flask.flash.category"] == "success"


def test_an_unhandled_exception_is_an_error_line_and_an_error_span(observe):
    observed = observe(shop_app())
    with observed.serve() as base:
        assert http(f"{base}/boom")[0] == 500
    (error,) = observed.events("flask.got_request_exception")
    assert error["level"] == "error"
    assert error["exception.type"] == "ValueError"
    assert error["exception.message"] == "the report generator crashed"
    assert "raise ValueError" in error["exception.stacktrace"]
    assert error["exception.frames"][-1]["function"] == "boom"
    assert {"file", "line", "function"} <= set(error["exception.frames"][-1])
    assert error["http.route"] == "/boom"
    (access,) = observed.events("flask.request_finished")
    assert access["http.response.status_code"] == 500 and access["level"] == "error"

    (span,) = observed.server_spans()
    assert span.status.status_code == StatusCode.ERROR
    names = [event.name for event in span.events]
    assert "flask.got_request_exception" in names
    assert names.count("exception") == 1  # recorded once, not once by us and once by the instrumentation
    exception = next(event for event in span.events if event.name == "exception")
    assert exception.attributes["exception.type"].endswith("ValueError")
    assert "raise ValueError" in exception.attributes["exception.stacktrace"]


def test_an_http_error_raised_on_purpose_is_not_an_exception_but_5xx_is_an_error(observe):
    observed = observe(shop_app())
    client = observed.client()
    assert client.get("/missing").status_code == 404
    assert client.get("/nowhere").status_code == 404
    assert client.get("/teapot").status_code == 503
    assert observed.events("flask.got_request_exception") == []
    statuses = {span.attributes["url.path"]: span for span in observed.server_spans()}
    assert all(event.name != "exception" for span in statuses.values() for event in span.events)
    assert statuses["/missing"].status.status_code == StatusCode.UNSET
    assert statuses["/teapot"].status.status_code == StatusCode.ERROR
    unrouted = [line for line in observed.events("flask.request_finished") if line["url.path"] == "/nowhere"]
    assert unrouted[0]["http.response.status_code"] == 404 and "http.route" not in unrouted[0]


def test_excluded_paths_produce_nothing(observe):
    app = shop_app()

    @app.route("/healthz")
    def healthz():
        return "ok"

    observed = observe(app, SIGOBS_EXCLUDED_PATHS="/healthz,/items/9*")
    client = observed.client()
    client.get("/healthz")
    client.get("/items/99")
    client.get("/items/1")
    assert [line["url.path"] for line in observed.events("flask.request_finished")] == ["/items/1"]
    assert [span.attributes["url.path"] for span in observed.server_spans()] == ["/items/1"]


@pytest.mark.parametrize("span_source", ["otel"])
def test_excluded_paths_skip_the_instrumentation_we_installed(observe, caplog):
    """On the standard instrumentation's span, an excluded path starts no span and passes around
    the instrumentation, without its "span missing" warning; uninstrumenting still works."""
    from .extras import flask_instrumentor

    FlaskInstrumentor = flask_instrumentor()

    app = shop_app()

    @app.route("/healthz")
    def healthz():
        return "ok"

    observed = observe(app)
    assert observed.sigobs.runtime(app).instrumented_by == "flask-sigobs"
    client = observed.client()
    with caplog.at_level(logging.WARNING, logger="opentelemetry.instrumentation.flask"):
        assert client.get("/healthz").status_code == 200
        assert client.get("/items/1").status_code == 200
    assert [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")] == []
    assert [span.attributes["url.path"] for span in observed.server_spans()] == ["/items/1"]
    assert [line["url.path"] for line in observed.events("flask.request_finished")] == ["/items/1"]

    FlaskInstrumentor.uninstrument_app(app)
    assert client.get("/items/2").status_code == 200
    assert [span.attributes["url.path"] for span in observed.server_spans()] == ["/items/1"]
    assert [line["url.path"] for line in observed.events("flask.request_finished")] == ["/items/1", "/items/2"]


def test_static_files_are_excluded_by_default(observe, tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    (static / "app.css").write_text("body{}")
    app = Flask("static_app", static_folder=str(static))
    observed = observe(app)
    assert observed.client().get("/static/app.css").status_code == 200
    assert observed.lines() == [] and observed.server_spans() == []


def test_the_catalogue_covers_all_ten_flask_signals():
    import flask

    names = {"request_started", "request_finished", "got_request_exception", "request_tearing_down",
             "appcontext_tearing_down", "appcontext_pushed", "appcontext_popped", "template_rendered",
             "before_render_template", "message_flashed"}
    assert set(catalogue.SIGNALS) == names
    for name, spec in catalogue.SIGNALS.items():
        assert spec.signal is getattr(flask, name)
    assert catalogue.SIGNALS["got_request_exception"].level == logging.ERROR
