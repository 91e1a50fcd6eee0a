"""Values our receivers cannot print, walk or encode: the request succeeds, and the event is still
written, as one bounded, valid JSON line and a bounded span event. Served by a real server."""

from __future__ import annotations

from collections.abc import Mapping

from blinker import Namespace
from flask import Flask, current_app, flash

from flask_sigobs import auth
from flask_sigobs.otel_setup import MAX_ATTRIBUTE_LENGTH

from .reliability import figure
from .servers import http_get, json_lines

custom = Namespace().signal("test.values")
LINE_LIMIT = 32_000  # bytes: every value bounded to 1024 characters, 50 items, 6 levels


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


class ExplodingMapping(Mapping):
    def __getitem__(self, key):
        raise KeyError(key)

    def __iter__(self):
        raise RuntimeError("no iteration")

    def __len__(self) -> int:
        return 3


class ExplodingIterable(list):
    def __iter__(self):
        raise RuntimeError("no iteration")


def hostile_values() -> dict:
    loop_list: list = [1]
    loop_list.append(loop_list)
    loop_dict: dict = {"a": 1}
    loop_dict["self"] = loop_dict
    deep: list = []
    for _ in range(1000):
        deep = [deep]
    return {"weird": Unprintable(), "loop_list": loop_list, "loop_dict": loop_dict, "deep": deep,
            "huge": "x" * 10_000_000, "raw": b"\xff\xfe\x00not utf-8 \xc3\x28" * 100_000,
            "surrogate": "lone \ud800 surrogate", "big_int": 2**200, "many": set(range(100_000)),
            "mapping": ExplodingMapping(), "listish": ExplodingIterable([1, 2]),
            "generator": (i for i in range(3)), "nan": float("nan"), "controls": "\x1b[2J\x00\x7f\x9b"}


def values_app() -> Flask:
    app = Flask("receiver_values")

    @app.route("/signals")
    def signals():
        sender = current_app._get_current_object()
        auth.login_failed.send(sender, user=Unprintable(), **hostile_values())
        custom.send(sender, **hostile_values())
        flash("x", category="\x1b[2J" + "c" * 5000)
        return "still fine"

    @app.route("/raise-unprintable")
    def raise_unprintable():
        raise UnprintableError()

    @app.route("/raise-huge")
    def raise_huge():
        raise ValueError("m" * 10_000_000)

    return app


def test_values_that_break_printing_still_make_bounded_valid_events(observe):
    observed = observe(values_app(), SIGOBS_LOG_LEVEL="debug")
    observed.sigobs.observe(custom)
    with observed.serve() as base:
        status, _, body = http_get(f"{base}/signals")
        statuses = [status, http_get(f"{base}/raise-unprintable")[0], http_get(f"{base}/raise-huge")[0]]
    assert body == b"still fine"
    assert statuses == [200, 500, 500]  # the app's own exceptions stay the app's 500s, nothing worse
    raw = observed.raw_log()
    ours = [line for line in json_lines(raw) if "logger" not in line]
    sizes = [len(line) for line in raw.splitlines()]
    by_event: dict[str, list[dict]] = {}
    for line in ours:
        by_event.setdefault(line["event"], []).append(line)
    failed, values = by_event["auth.login_failed"][-1], by_event["test.values"][-1]
    for line in (failed, values):
        assert line["weird"] == "<unprintable Unprintable>"
        assert line["huge"].startswith("x" * 1024) and line["huge"].endswith("more chars]")
        assert line["surrogate"] == "lone \\ud800 surrogate" and line["big_int"] == str(2**200)
        assert line["controls"] == "\x1b[2J\x00\\x7f\\x9b"  # C0 escaped by JSON, DEL and C1 by us
        assert "nested too deep" in str(line["deep"]) and len(line["many"]) == 51
    assert failed["enduser.id"] == "<unprintable Unprintable>"
    category = by_event["flask.message_flashed"][-1]["flask.flash.category"]
    assert category.startswith("\x1b[2Jccc") and category.endswith("more chars]")
    unprintable, huge = by_event["flask.got_request_exception"]
    assert unprintable["exception.message"] == "<unprintable UnprintableError>"
    assert len(huge["exception.message"]) < 1100 and len(huge["exception.stacktrace"]) < 9000
    assert max(sizes) < LINE_LIMIT, max(sizes)
    assert b"\x7f" not in raw and b"\xc2\x9b" not in raw
    # The spans: every event there, every string bounded, the instrumentation's own too.
    longest = 0
    for span in observed.server_spans():
        for event in span.events:
            for value in event.attributes.values():
                if isinstance(value, str):
                    longest = max(longest, len(value))
        assert len(span.status.description or "") <= MAX_ATTRIBUTE_LENGTH + 40
        assert len(span.to_json()) < 200_000
    names = [event.name for span in observed.server_spans() for event in span.events]
    assert names.count("auth.login_failed") == 1 and names.count("test.values") == 1
    assert longest <= MAX_ATTRIBUTE_LENGTH + 40
    figure(f"hostile receiver values ({observed.app.config['SIGOBS_SPAN_SOURCE']} span source): requests "
           f"{statuses}, longest log line {max(sizes)} bytes, longest span attribute {longest} characters")
