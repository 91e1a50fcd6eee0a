"""Hostile requests, generated: arbitrary paths, query strings, header names and values (newlines
by folding, ANSI escape codes, NUL, invalid UTF-8, very long values), arbitrary ``X-Request-ID``
and ``traceparent`` values, sent as raw bytes to a real server.

For each: no failure inside flask-sigobs, one valid JSON line per event and nothing else, no raw
control character in the log (C0 and DEL and C1), a forged request id replaced, a malformed
``traceparent`` not taken, a well-formed one honoured.
"""

from __future__ import annotations

import json
import re
from collections import Counter

from flask import Flask, jsonify, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_sigobs import errors

from .reliability import figure
from .servers import json_lines, raw_request

EXAMPLES = 200  # per span source

EVENTS = ("flask.appcontext_pushed", "flask.request_started", "flask.request_finished",
          "flask.request_tearing_down", "flask.appcontext_tearing_down", "flask.appcontext_popped")

# -- what a request may hold ------------------------------------------------------------------

TOKEN = "!#$&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
NASTY = [b"\x1b[2J\x1b[31mred", b"\x00", b"\x7f", b"\xc2\x9b31m", b"\x9b", b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80",
         b"\t", b"\x0b\x0c", b"\xe2\x80\xae", b'"}{"level":"error"', b"\\u0000", b"%s%n"]


def _percent(data: bytes) -> bytes:
    return b"".join(b"%%%02X" % byte for byte in data)


url_piece = st.one_of(
    st.binary(min_size=1, max_size=4).map(_percent),  # any byte, encoded: \n, ESC, NUL, 0xff...
    st.text(alphabet=TOKEN + "=@:;,", min_size=1, max_size=8).map(str.encode),
    st.binary(min_size=1, max_size=4).map(lambda b: bytes(0x80 | x for x in b)),  # raw, not UTF-8
    st.sampled_from(NASTY).map(_percent),
    st.sampled_from([b"..", b"%2e%2e", b"%0d%0aSet-Cookie:%20x=1", b"%1b]0;title%07"]),
)
paths = st.one_of(
    st.lists(url_piece, max_size=6).map(lambda parts: b"/" + b"/".join(parts)),
    st.integers(1000, 6000).map(lambda n: b"/" + b"a" * n),
)
queries = st.one_of(st.just(b""), st.lists(st.tuples(url_piece, url_piece), max_size=4).map(
    lambda pairs: b"&".join(k + b"=" + v for k, v in pairs)))
header_values = st.one_of(
    st.binary(max_size=64).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.lists(st.sampled_from(NASTY), min_size=1, max_size=4).map(b"".join),
    st.integers(1000, 7000).map(lambda n: b"v" * n + b"\x1b[0m"),
    st.tuples(st.binary(max_size=16), st.binary(max_size=16)).map(  # obs-fold: a newline in a value
        lambda t: t[0].replace(b"\r", b"").replace(b"\n", b"") + b"\r\n\t" + t[1].replace(b"\r", b"").replace(b"\n", b"")),
)
header_names = st.one_of(st.text(alphabet=TOKEN, min_size=1, max_size=24).map(str.encode),
                         st.sampled_from([b"User-Agent", b"X-Forwarded-For", b"Cookie", b"Authorization"]))


def _hex(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789abcdef", min_size=n, max_size=n)


well_formed = st.builds(lambda v, t, s, f: f"{v}-{t}-{s}-{f}", st.just("00"), _hex(32), _hex(16), _hex(2))
traceparents = st.one_of(
    well_formed,
    # one change away from well-formed: a character, a length, the case, the version, zero ids, more fields
    st.tuples(well_formed, st.integers(0, 54), st.sampled_from("0aG-_ Z\x00\x1b")).map(
        lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + 1:]),
    well_formed.map(str.upper),
    well_formed.map(lambda tp: tp + "-extra"),
    well_formed.map(lambda tp: "ff" + tp[2:]),
    well_formed.map(lambda tp: tp[:3] + "0" * 32 + tp[35:]),
    well_formed.map(lambda tp: tp[:36] + "0" * 16 + tp[52:]),
    st.builds(lambda v, t, s, f: f"{v}-{t}-{s}-{f}-{'x' * 3}", st.just("cc"), _hex(32), _hex(16), _hex(2)),
    st.text(max_size=80),
)
request_ids = st.one_of(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", fullmatch=True),
                        st.text(max_size=100), st.integers(65, 300).map(lambda n: "r" * n),
                        st.sampled_from(["abc\r\nInjected: 1", "id\x1b[2J", " leading", "../../etc", "a b"]))


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")


hostile_requests = st.fixed_dictionaries({
    "method": st.sampled_from(["GET", "POST", "DELETE", "OPTIONS", "PATCH", "PROPFIND", "HEAD"]),
    "path": paths,
    "query": queries,
    "headers": st.lists(st.tuples(header_names, header_values), max_size=6),
    "request_id": st.none() | request_ids,
    "traceparent": st.none() | traceparents,
})


def encode(example: dict) -> bytes:
    target = example["path"] + (b"?" + example["query"] if example["query"] else b"")
    lines = [example["method"].encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    for name, value in example["headers"]:
        lines.append(name + b": " + value)
    if example["request_id"] is not None:
        lines.append(b"X-Request-ID: " + _text(example["request_id"]))
    if example["traceparent"] is not None:
        lines.append(b"traceparent: " + _text(example["traceparent"]))
    return b"\r\n".join(lines) + b"\r\n\r\n"


# -- the oracle ---------------------------------------------------------------------------------

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
W3C = re.compile(r"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\n]*)?[ \t]*")
CONTROL_BYTES = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]")  # raw, in the log (\n ends lines)
CONTROL_CHARS = re.compile("[\x80-\x9f\ud800-\udfff]")  # C1 controls, lone surrogates


def honoured_trace_id(header: str | None) -> str | None:
    """The trace id a W3C Trace Context implementation takes from ``header``; None: none."""
    if header is None:
        return None
    match = W3C.fullmatch(header)
    if not match:
        return None
    version, trace_id, parent_id, _, rest = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16 or (version == "00" and rest):
        return None
    return trace_id


def hostile_app() -> Flask:
    app = Flask("hostile_input")

    @app.route("/", defaults={"anything": ""}, methods=["GET", "POST", "DELETE", "OPTIONS", "PATCH", "PROPFIND"])
    @app.route("/<path:anything>", methods=["GET", "POST", "DELETE", "OPTIONS", "PATCH", "PROPFIND"])
    def echo(anything: str):  # what the server made of the headers: the oracle's input
        return jsonify(request_id=request.environ.get("HTTP_X_REQUEST_ID"),
                       traceparent=request.environ.get("HTTP_TRACEPARENT"))

    return app


def test_hostile_requests_make_valid_lines_and_are_not_believed(observe):
    observed = observe(hostile_app(), SIGOBS_LOG_LEVEL="debug", SIGOBS_SIGNALS="all")
    seen: Counter[str] = Counter()
    with observed.serve() as base:
        port = int(base.rsplit(":", 1)[1])

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(example=hostile_requests)
        def check(example: dict) -> None:
            observed.spans()  # flushed: nothing of an earlier example is left to mix in
            observed.exporter.clear()
            failures_before = sum(errors.failures.values())
            offset = len(observed.raw_log())
            status, headers, body = raw_request(port, encode(example), method=example["method"])
            raw = observed.raw_log()[offset:]
            seen["requests"] += 1
            assert sum(errors.failures.values()) == failures_before, "flask-sigobs failed inside"
            # The log: whole JSON lines, no raw control character, whatever was sent.
            assert not CONTROL_BYTES.search(raw), raw[:300]
            lines = json_lines(raw)
            assert not CONTROL_CHARS.search(raw.decode("utf-8")), raw[:300]
            lines = [line for line in lines if "logger" not in line]  # ours; not the server's own log
            if "x-request-id" not in headers:  # the server refused it before the app: no line
                assert status in (0, 400, 414, 431) and lines == [], (status, lines[:1])
                assert observed.server_spans() == []
                seen["refused by the server"] += 1
                return
            assert status < 500, status
            seen["served"] += 1
            request_id = headers["x-request-id"]
            # One line per event, all of this request.
            assert Counter(line["event"] for line in lines) == Counter(EVENTS), [line["event"] for line in lines]
            assert {line["request.id"] for line in lines} == {request_id}
            # A request id is taken only when it is a short, safe token; else a fresh one.
            echoed = json.loads(body) if status == 200 and example["method"] != "HEAD" else None
            if echoed is not None:  # the request id as the server parsed it
                sent_id = echoed["request_id"]
            else:
                sent_id = _text(example["request_id"]).decode("latin-1").strip() if example["request_id"] else None
            if sent_id is not None and SAFE_ID.fullmatch(sent_id):
                assert request_id == sent_id
            else:
                assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id
                seen["request ids replaced"] += 1 if sent_id is not None else 0
            # A traceparent is honoured only when well-formed.
            access = next(line for line in lines if line["event"] == "flask.request_finished")
            spans = observed.server_spans()
            if echoed is None:  # HEAD, a redirect, a 404: the server's view of the headers is unknown
                assert len(spans) <= 1
                return
            header = echoed["traceparent"]
            expected = honoured_trace_id(header)
            if expected is not None:
                assert access["trace_id"] == expected
                sampled = int(header.strip(" \t")[53:55], 16) & 1
                assert len(spans) == sampled  # the caller's sampling decision is kept too
                seen["traceparents honoured"] += 1
            else:
                (span,) = spans
                assert format(span.context.trace_id, "032x") == access["trace_id"]
                assert span.parent is None or not span.parent.is_remote
                if header is not None:
                    assert access["trace_id"] not in header.lower(), header
                    seen["traceparents refused"] += 1

        check()
    figure(f"hostile requests ({observed.app.config['SIGOBS_SPAN_SOURCE']} span source): {seen['requests']} tried, "
           f"{seen['served']} served ({seen['refused by the server']} refused by the server), "
           f"{seen['request ids replaced']} forged request ids replaced, {seen['traceparents refused']} malformed "
           f"traceparents refused, {seen['traceparents honoured']} well-formed honoured; 0 failures, 0 raw controls")
    assert seen["served"] > EXAMPLES // 2
