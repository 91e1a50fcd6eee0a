"""The test span over OTLP/HTTP, and what the answer (or the failure) means, in words.

It is posted through the exporter's own transport (its endpoint, headers, compression, TLS
settings), or, for SDK releases before 1.45, the exporter's own requests session in the same
shape; a failure is classified from the exception chain and, where that says too little, by
``sniff``-ing what speaks on the port.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable

from .exporters import ExporterInfo
from .report import Delivery
from .sniff import _address, _host_port, sniff
from .words import _credentials_words, _rejected, _short, _their_words


def _send_http(info: ExporterInfo, span: Any, seconds: float) -> Delivery:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    exporter = info.exporter
    endpoint = info.endpoint or ""
    client = getattr(exporter, "_client", None)
    transport = getattr(client, "_transport", None)
    if transport is None and _SessionTransport.fits(exporter):  # SDK releases before 1.45: its own session
        client = transport = _SessionTransport(exporter)
    if transport is None:  # an exporter whose insides moved: its own export, success or not
        ok = exporter.export([span]).name == "SUCCESS"
        return Delivery("accepted" if ok else "error", "accepted" if ok else "failed (see the exporter's log)",
                        endpoint, info.protocol, 0.0)
    data = encode_spans([span]).SerializePartialToString()
    compress = getattr(client, "_compress", None)
    if compress is not None:
        data = compress(data)
    headers = dict(getattr(client, "_headers", {}) or {})
    result = transport.request("POST", getattr(client, "_endpoint", endpoint), headers=headers, data=data,
                               timeout=seconds)
    return _classify_http(result, endpoint, seconds, info.protocol, _ca_file_replaced(transport))


class _SessionTransport:
    """The OTLP/HTTP exporter of SDK releases before 1.45, which posts with a requests session of its
    own (``_session``, ``_endpoint``, ``_compression``, ``_certificate_file``, ``_client_cert``), in
    the shape of the newer exporters' client and transport, so the test span is sent the same way."""

    def __init__(self, exporter: Any) -> None:
        self._exporter = exporter
        self._session = exporter._session
        self._endpoint = exporter._endpoint
        self._headers: dict[str, str] = {}  # the session carries the exporter's headers already
        kind = str(getattr(getattr(exporter, "_compression", None), "name", "")).lower()
        if kind == "gzip":
            import gzip

            self._compress: Callable[[bytes], bytes] | None = gzip.compress
        elif kind == "deflate":
            import zlib

            self._compress = zlib.compress
        else:
            self._compress = None

    @staticmethod
    def fits(exporter: Any) -> bool:
        import requests

        return isinstance(getattr(exporter, "_session", None), requests.Session) and \
            isinstance(getattr(exporter, "_endpoint", None), str)

    def request(self, method: str, url: str, headers: dict[str, str], data: bytes, timeout: float) -> Any:
        exporter = self._exporter
        try:
            response = self._session.request(method, url, headers=headers or None, data=data, timeout=timeout,
                                             verify=getattr(exporter, "_certificate_file", True),
                                             cert=getattr(exporter, "_client_cert", None))
        except Exception as error:  # refused, timed out, TLS: said in words by _classify_http_error
            return _SessionResult(None, error)
        return _SessionResult(response, None)


@dataclass
class _SessionResult:
    response: Any
    error: BaseException | None

    @property
    def status_code(self) -> int | None:
        return None if self.response is None else self.response.status_code

    def content(self) -> bytes:
        return b"" if self.response is None else self.response.content


def _ca_file_replaced(transport: Any) -> str | None:
    """The variable (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) with which requests replaces the
    CA file the exporter gave its session (psf/requests#3829), if it does."""
    session = getattr(transport, "_session", None)
    if not isinstance(getattr(session, "verify", None), str) or not getattr(session, "trust_env", False):
        return None
    import requests

    if type(session).merge_environment_settings is not requests.Session.merge_environment_settings:
        return None  # a session that chooses for itself (flask-sigobs's keeps the CA file first)
    return next((name for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") if os.environ.get(name)), None)


def _classify_http(result: Any, endpoint: str, seconds: float, protocol: str,
                   ca_file_replaced: str | None = None) -> Delivery:
    host, port, scheme = _host_port(endpoint, 4318)
    where = _address(host, port)
    status = result.status_code
    if status is None:
        return _classify_http_error(result.error, endpoint, host, port, scheme, seconds, protocol,
                                    ca_file_replaced)
    body = b""
    try:
        body = result.content() or b""
    except Exception:
        pass
    if 200 <= status < 300:
        rejected = _rejected(_parsed_response(body), endpoint, protocol, http_status=status)
        return rejected or Delivery("accepted", f"accepted (HTTP {status})", endpoint, protocol, 0.0,
                                    http_status=status)
    path = urllib.parse.urlsplit(endpoint).path or "/"
    text = _said(body, result)
    if status == 404:
        fix = ("OTLP/HTTP takes traces at /v1/traces: set OTEL_EXPORTER_OTLP_ENDPOINT to the base URL "
               "(http://host:4318, the exporter adds /v1/traces) or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT to the "
               "full URL ending in /v1/traces")
        return Delivery("wrong_path", f"HTTP 404 (wrong path): nothing at {path} on {where}",
                        endpoint, protocol, 0.0, http_status=status, fix=fix)
    if status == 400 and "HTTPS server" in text:  # a TLS server's answer to plain HTTP: said as when it resets
        return Delivery("tls", f"TLS expected: {where} speaks TLS, the exporter sent plain HTTP (http://)",
                        endpoint, protocol, 0.0, http_status=status, fix=f"use https://{where}")
    if status in (401, 403):
        words, fix = _credentials_words()
        return Delivery("http_error", f"HTTP {status} ({'unauthenticated' if status == 401 else 'forbidden'}): "
                                      f"{words}" + (f" ({text.strip()[:200]})" if text.strip() else ""),
                        endpoint, protocol, 0.0, http_status=status, fix=fix)
    if status in (405, 415):
        return Delivery("wrong_path", f"HTTP {status}: {where}{path} is not an OTLP/HTTP traces endpoint",
                        endpoint, protocol, 0.0, http_status=status,
                        fix="point OTEL_EXPORTER_OTLP_ENDPOINT at an OpenTelemetry Collector's OTLP/HTTP port (4318)")
    if 300 <= status < 400:
        return Delivery("http_error", f"HTTP {status}: redirected; OTLP exporters do not follow redirects",
                        endpoint, protocol, 0.0, http_status=status, fix="use the URL the redirect points to")
    words = f"HTTP {status}" + (f": {text.strip()[:200]}" if text.strip() else "")
    if status == 429 or status >= 500:
        words += " (the collector is busy or failing)"
    return Delivery("http_error", words, endpoint, protocol, 0.0, http_status=status)


def _said(body: bytes, result: Any) -> str:
    """What an error response says, as text: a Collector answers OTLP/HTTP in the request's
    encoding, so a protobuf request gets a protobuf ``google.rpc.Status`` (its message is the text)."""
    response = getattr(result, "response", None)
    kind = str(getattr(response, "headers", {}).get("Content-Type", "")) if response is not None else ""
    if "protobuf" in kind:
        try:
            from google.rpc.status_pb2 import Status

            status = Status()
            status.ParseFromString(body)
            return _their_words(status.message)
        except Exception:
            return ""
    return _their_words(body[:300].decode("utf-8", "replace"))


def _parsed_response(body: bytes) -> Any:
    """The ``ExportTraceServiceResponse`` of an OTLP/HTTP answer, or ``None``."""
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        response = ExportTraceServiceResponse()
        response.ParseFromString(body)
        return response
    except Exception:
        return None


def _chain(error: BaseException | None) -> str:
    """The text of an exception and of those it wraps."""
    parts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        parts.append(f"{type(error).__name__}: {error}")
        for arg in getattr(error, "args", ()):
            if isinstance(arg, BaseException):
                parts.append(f"{type(arg).__name__}: {arg}")
        reason = getattr(error, "reason", None)
        if isinstance(reason, BaseException):
            parts.append(f"{type(reason).__name__}: {reason}")
        error = error.__cause__ or error.__context__
    return " | ".join(parts)


def _classify_http_error(error: Any, endpoint: str, host: str, port: int, scheme: str, seconds: float,
                         protocol: str, ca_file_replaced: str | None = None) -> Delivery:
    where = _address(host, port)
    text = _chain(error)
    lower = text.lower()
    if "connection refused" in lower or "errno 111" in lower:
        return Delivery("refused", f"connection refused: nothing listens on {where}", endpoint, protocol, 0.0,
                        fix="start the collector, or fix the host and port of OTEL_EXPORTER_OTLP_ENDPOINT")
    if "name or service not known" in lower or "nodename nor servname" in lower or "failed to resolve" in lower \
            or "name resolution" in lower:
        return Delivery("error", f"the host name {host!r} cannot be resolved", endpoint, protocol, 0.0,
                        fix="fix the host of OTEL_EXPORTER_OTLP_ENDPOINT")
    if "ssl" in lower or "certificate" in lower or "tls" in lower:
        sniffed = sniff(host, port, min(seconds, 2.0))
        plain = "wrong_version_number" in lower or sniffed in ("http1", "http2")
        if not plain and "certificate" in lower and "verify" in lower and ca_file_replaced:
            return Delivery("tls", f"TLS: the certificate of {where} is not trusted: {ca_file_replaced} "
                                   "replaces the exporter's CA file (OTEL_EXPORTER_OTLP_CERTIFICATE) in requests, "
                                   "its HTTP client (psf/requests#3829)", endpoint, protocol, 0.0,
                            fix=f"unset {ca_file_replaced} for the app (or add the collector's CA to it), or let "
                                "flask-sigobs set up the exporter: its exporter keeps the CA file first")
        if not plain and "certificate" in lower and "verify" in lower:
            return Delivery("tls", f"TLS: the certificate of {where} is not trusted ({_short(text)})",
                            endpoint, protocol, 0.0, fix="set OTEL_EXPORTER_OTLP_CERTIFICATE to the CA's certificate")
        if plain:
            return Delivery("tls", f"TLS not expected: the exporter speaks TLS (https://) but {where} "
                                   f"answers in plain text", endpoint, protocol, 0.0,
                            fix=f"use http://{where} (or give the collector a TLS certificate)")
        return Delivery("tls", f"TLS handshake failed with {where}: {_short(text)}", endpoint, protocol, 0.0)
    if "timed out" in lower or "timeout" in lower:
        sniffed = sniff(host, port, min(seconds, 2.0))
        if sniffed == "http2":
            return _wrong_protocol_http(endpoint, host, port, protocol)
        return Delivery("timed_out", f"timed out after {seconds:g} s: {where} accepted the connection but "
                                     f"never answered (a black hole: a firewall, a hung or non-OTLP server)"
                        if "read" in lower or sniffed == "silent" else
                        f"timed out after {seconds:g} s connecting to {where}", endpoint, protocol, 0.0,
                        fix="check that the port is the collector's OTLP/HTTP port (4318) and that it is healthy")
    sniffed = sniff(host, port, min(seconds, 2.0))
    if sniffed == "http2":
        return _wrong_protocol_http(endpoint, host, port, protocol)
    if sniffed == "tls" and scheme == "http":
        return Delivery("tls", f"TLS expected: {where} speaks TLS, the exporter sent plain HTTP (http://)",
                        endpoint, protocol, 0.0, fix=f"use https://{where}")
    return Delivery("error", f"failed: {_short(text)}", endpoint, protocol, 0.0)


def _wrong_protocol_http(endpoint: str, host: str, port: int, protocol: str) -> Delivery:
    where = _address(host, port)
    return Delivery("wrong_protocol",
                    f"wrong protocol: {where} is a gRPC endpoint (HTTP/2), spoken to over OTLP/HTTP",
                    endpoint, protocol, 0.0,
                    fix="set OTEL_EXPORTER_OTLP_PROTOCOL=grpc for this port, or use the collector's OTLP/HTTP "
                        "port (4318 by default; 4317 is gRPC)")
