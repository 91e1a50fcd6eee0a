"""``X-Forwarded-For`` is believed only as far as ``SIGOBS_TRUSTED_PROXIES`` says, and never
twice when werkzeug's ``ProxyFix`` has already applied it.

The scenario, generated: a client forges any ``X-Forwarded-For`` it likes, then each of N
trusted proxies appends the address it saw. The true client is the address the first trusted
proxy appended; with the setting at N, that is what the log line and the span say, and with it
at 0 (the default), the socket's address, whatever the header holds.
"""

from __future__ import annotations

import ipaddress

import pytest
from flask import Flask, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.middleware.proxy_fix import ProxyFix

from .reliability import figure
from .servers import json_lines, raw_request

EXAMPLES = 40

addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
forged_parts = st.one_of(addresses, st.text(st.characters(blacklist_characters="\r\n"), max_size=30), st.sampled_from(
    ["unknown", "127.0.0.1", "::1", "1.2.3.4:80", "[::1]", "evil\x1b[2J", "10.0.0.1, 10.0.0.2", ""]))
forged_headers = st.none() | st.lists(forged_parts, max_size=4).map(", ".join)


def proxies_app() -> Flask:
    app = Flask("proxies")
    app.route("/")(lambda: request.remote_addr or "")
    return app


def send(port: int, forwarded: str | None) -> tuple[str, str]:
    header = b"" if forwarded is None else b"X-Forwarded-For: " + forwarded.encode("utf-8", "surrogatepass") + b"\r\n"
    status, headers, body = raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header + b"\r\n")
    assert status == 200, status
    return headers["x-request-id"], body.decode("utf-8", "replace")


def access_line(observed, request_id: str, offset: int = 0) -> dict:
    (line,) = [line for line in json_lines(observed.raw_log()[offset:])
               if line.get("event") == "flask.request_finished" and line["request.id"] == request_id]
    return line


def span_of(observed, line: dict):
    (span,) = [s for s in observed.server_spans() if format(s.context.trace_id, "032x") == line["trace_id"]]
    return span


def fresh(observed) -> int:
    """Forget the spans so far (hypothesis seeds ``random``, so ids may repeat across examples);
    the log offset from which this example's lines start."""
    observed.spans()
    observed.exporter.clear()
    return len(observed.raw_log())


@pytest.mark.parametrize("trusted", [0, 1, 2])
def test_forwarded_for_is_believed_only_as_far_as_trusted(observe, trusted):
    observed = observe(proxies_app(), SIGOBS_TRUSTED_PROXIES=trusted)
    tried = 0
    with observed.serve() as base:
        port = int(base.rsplit(":", 1)[1])

        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
        @given(forged=forged_headers, client=addresses, proxies=st.lists(addresses, min_size=2, max_size=2))
        def check(forged: str | None, client: str, proxies: list[str]) -> None:
            nonlocal tried
            # what the header holds once `trusted` proxies have appended what each saw
            hops = [part for part in [forged] if part is not None] + [client, *proxies][:trusted]
            header = ", ".join(hops) if hops else None
            offset = fresh(observed)
            request_id, _ = send(port, header)
            line = access_line(observed, request_id, offset)
            expected = str(ipaddress.ip_address(client)) if trusted else "127.0.0.1"
            assert line["client.address"] == expected, (header, line["client.address"])
            assert span_of(observed, line).attributes["client.address"] == expected
            tried += 1

        check()
    figure(f"client address ({observed.app.config['SIGOBS_SPAN_SOURCE']} span source), "
           f"SIGOBS_TRUSTED_PROXIES={trusted}: {tried} generated forged X-Forwarded-For "
           f"headers, none believed beyond the trusted hops")


@pytest.mark.parametrize("x_for, trusted, proxy_fix_outside", [
    (1, 0, True), (1, 1, True), (2, 1, True), (1, 2, True), (1, 0, False), (2, 1, False)])
def test_proxyfix_decides_and_is_never_applied_twice(observe, x_for, trusted, proxy_fix_outside):
    """With ``ProxyFix(x_for=N)`` the client is the one it decided (``request.remote_addr``),
    whatever ``SIGOBS_TRUSTED_PROXIES`` says: the log and the app agree, no hop counted twice."""
    app = proxies_app()
    if not proxy_fix_outside:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=x_for)
    observed = observe(app, SIGOBS_TRUSTED_PROXIES=trusted)
    if proxy_fix_outside:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=x_for)
    hops = ["6.6.6.6", "203.0.113.7", "10.0.0.2"]  # forged by the client, then what the proxies saw
    with observed.serve() as base:
        port = int(base.rsplit(":", 1)[1])
        offset = fresh(observed)
        request_id, remote_addr = send(port, ", ".join(hops))
        line = access_line(observed, request_id, offset)
        assert remote_addr == hops[-x_for]
        assert line["client.address"] == hops[-x_for]
        assert span_of(observed, line).attributes["client.address"] == hops[-x_for]
        # A proxy that passed on whatever the client wrote: ProxyFix believes text; we escape it.
        offset = fresh(observed)
        request_id, remote_addr = send(port, "1.1.1.1, evil\x1b[2J\x85" + ", 10.0.0.2" * (x_for - 1))
        line = access_line(observed, request_id, offset)
        assert remote_addr.startswith("evil")
        # The UTF-8 bytes of U+0085, as sent (werkzeug 3.0's ProxyFix strips the trailing U+0085 as whitespace).
        assert line["client.address"] == ("evil\\x1b[2J\\xc2\\x85" if remote_addr.endswith("\x85") else "evil\\x1b[2J\\xc2")
    assert b"\x1b" not in observed.raw_log() and "\x85" not in observed.raw_log().decode()


def test_without_proxyfix_the_span_agrees_with_the_log(observe):
    """The instrumentation writes the socket peer as the span's ``client.address``; with trusted
    proxies it says what the log line says, and the peer stays as ``network.peer.address``."""
    observed = observe(proxies_app(), SIGOBS_TRUSTED_PROXIES=1)
    with observed.serve() as base:
        request_id, remote_addr = send(int(base.rsplit(":", 1)[1]), "6.6.6.6, 198.51.100.9")
    line = access_line(observed, request_id)
    span = span_of(observed, line)
    assert remote_addr == "127.0.0.1"  # the app's own view is untouched: no ProxyFix here
    assert line["client.address"] == span.attributes["client.address"] == "198.51.100.9"
    if "network.peer.address" in span.attributes:
        assert span.attributes["network.peer.address"] == "127.0.0.1"
