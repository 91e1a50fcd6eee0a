"""The test span over OTLP/gRPC, and what the status code and its details mean, in words.

The span goes through the exporter's own stub and channel (its endpoint, metadata, TLS
credentials); gRPC's own words for a wrong port are vague, so ``sniff`` says what speaks there.
"""

from __future__ import annotations

from typing import Any, Callable

from .exporters import ExporterInfo
from .report import Delivery
from .sniff import _address, _host_port, sniff
from .words import _credentials_words, _rejected, _short


def _send_grpc(info: ExporterInfo, span: Any, seconds: float) -> Delivery:
    import grpc

    exporter = info.exporter
    endpoint = info.endpoint or ""
    host, port, scheme = _host_port(endpoint, 4317)
    client = getattr(exporter, "_client", None)
    if client is None and hasattr(exporter, "_initialize_channel_and_stub"):
        exporter._initialize_channel_and_stub()
        client = getattr(exporter, "_client", None)
    if client is None or not hasattr(exporter, "_translate_data"):
        ok = exporter.export([span]).name == "SUCCESS"
        return Delivery("accepted" if ok else "error", "accepted" if ok else "failed (see the exporter's log)",
                        endpoint, info.protocol, 0.0)
    try:
        response = client.Export(request=exporter._translate_data([span]),
                                 metadata=getattr(exporter, "_headers", None) or None, timeout=seconds)
    except grpc.RpcError as error:
        return _classify_grpc(error, endpoint, host, port, scheme, seconds, info.protocol,
                              insecure=bool(getattr(exporter, "_insecure", scheme != "https")))
    rejected = _rejected(response, endpoint, info.protocol, grpc_code="OK")
    return rejected or Delivery("accepted", "accepted (gRPC OK)", endpoint, info.protocol, 0.0, grpc_code="OK")


def _classify_grpc(error: Any, endpoint: str, host: str, port: int, scheme: str, seconds: float, protocol: str,
                   insecure: bool) -> Delivery:
    import grpc

    where = _address(host, port)

    code = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else str(error)) or ""
    name = code.name if code is not None else "UNKNOWN"
    lower = details.lower()

    def delivery(outcome: str, words: str, fix: str | None = None) -> Delivery:
        return Delivery(outcome, words, endpoint, protocol, 0.0, grpc_code=name, fix=fix)

    if "http1.x server" in lower or "http/1" in lower or ("404" in details and code == grpc.StatusCode.UNIMPLEMENTED):
        return _wrong_protocol_grpc(delivery, host, port)
    if "connection refused" in lower:
        return delivery("refused", f"connection refused: nothing listens on {where} (gRPC {name})",
                        "start the collector, or fix the host and port of OTEL_EXPORTER_OTLP_ENDPOINT")
    if "ssl" in lower or "handshake" in lower or "tls" in lower:
        plain = "wrong_version_number" in lower or sniff(host, port, min(seconds, 2.0)) in ("http1", "http2")
        if not plain and ("certificate" in lower or "verify" in lower):
            return delivery("tls", f"TLS: the certificate of {where} is not trusted ({_short(details)})",
                            "set OTEL_EXPORTER_OTLP_CERTIFICATE to the CA's certificate")
        return delivery("tls", f"TLS not expected: the exporter speaks TLS but {where} answers in plain "
                               f"text (gRPC {name})",
                        f"use http://{where} (or set OTEL_EXPORTER_OTLP_INSECURE=true)")
    sniffed = sniff(host, port, min(seconds, 2.0)) if code in (grpc.StatusCode.UNAVAILABLE,
                                                               grpc.StatusCode.DEADLINE_EXCEEDED,
                                                               grpc.StatusCode.UNKNOWN,
                                                               grpc.StatusCode.INTERNAL,
                                                               grpc.StatusCode.UNIMPLEMENTED) else None
    if sniffed == "http1":
        return _wrong_protocol_grpc(delivery, host, port)
    if sniffed == "tls" and insecure:
        return delivery("tls", f"TLS expected: {where} speaks TLS, the exporter connects in plain text",
                        f"use https://{where}")
    if sniffed == "refused":
        return delivery("refused", f"connection refused: nothing listens on {where} (gRPC {name})",
                        "start the collector, or fix the host and port of OTEL_EXPORTER_OTLP_ENDPOINT")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return delivery("timed_out", f"timed out after {seconds:g} s: {where} accepted the connection but "
                                     f"never answered (a black hole: a firewall, a hung or non-OTLP server)",
                        "check that the port is the collector's OTLP/gRPC port (4317) and that it is healthy")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return delivery("wrong_path", f"gRPC UNIMPLEMENTED: {where} speaks gRPC but has no OTLP trace "
                                      "service", "point OTEL_EXPORTER_OTLP_ENDPOINT at a collector's OTLP/gRPC port")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        words, fix = _credentials_words()
        return delivery("http_error", f"gRPC {name}: {words} ({_short(details)})", fix)
    return delivery("error", f"gRPC {name}: {_short(details)}")


def _wrong_protocol_grpc(delivery: Callable[..., Delivery], host: str, port: int) -> Delivery:
    where = _address(host, port)
    return delivery("wrong_protocol",
                    f"wrong protocol: {where} is an HTTP/1.1 endpoint (OTLP/HTTP?), spoken to over gRPC",
                    "set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf for this port, or use the collector's OTLP/gRPC "
                    "port (4317 by default; 4318 is OTLP/HTTP)")
