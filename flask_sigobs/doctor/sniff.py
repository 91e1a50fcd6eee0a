"""What speaks on a host and port: plain HTTP/1.1, HTTP/2 (gRPC), TLS, nothing, or silence.

An exporter's failure often names only its own symptom (a reset, a timeout); a few bytes from
the port tell a wrong protocol, a TLS mismatch and a black hole apart.
"""

from __future__ import annotations

import socket
import ssl
import urllib.parse


def _address(host: str, port: int) -> str:
    """``host:port`` as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _host_port(endpoint: str, default_port: int) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
    return parts.hostname or "localhost", parts.port or (443 if parts.scheme == "https" else default_port), parts.scheme


SNIFF_BYTES = 512


def sniff(host: str, port: int, timeout: float = 2.0) -> str:
    """What speaks on ``host:port``, from the first bytes it answers to a plain HTTP/1.1 request.

    ``refused``, ``silent`` (accepts, never answers), ``closed`` (closes without a word),
    ``http1``, ``http2`` (an HTTP/2 SETTINGS frame: a gRPC server), ``tls`` or ``other``.
    """
    where = _address(host, port)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "unreachable"
    try:
        sock.settimeout(timeout)
        try:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {where}\r\nConnection: close\r\n\r\n".encode())
            data = sock.recv(SNIFF_BYTES)
        except socket.timeout:
            return "silent"
        except OSError:
            return "tls" if _speaks_tls(host, port, timeout) else "closed"
        # Go's TLS servers (the Collector's) answer plain HTTP with a 400 whose body, past its
        # headers, says "HTTPS": read on until it is there, the server closes, or it goes quiet.
        while data.startswith(b"HTTP/1.") and len(data) < SNIFF_BYTES:
            try:
                more = sock.recv(SNIFF_BYTES - len(data))
            except OSError:
                break
            if not more:
                break
            data += more
    finally:
        sock.close()
    if not data:  # a gRPC server that speaks TLS only closes on plain text without a word
        return "tls" if _speaks_tls(host, port, timeout) else "closed"
    if data.startswith(b"HTTP/1."):
        return "tls" if b"HTTPS" in data else "http1"
    if len(data) >= 9 and data[3] == 0x04 and data[4] in (0x00, 0x01):  # frame type SETTINGS
        return "http2"
    if data[0] == 0x15 and data[1] == 0x03:  # a TLS alert record
        return "tls"
    return "other"


def _speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` completes a TLS handshake. Only a probe: nothing is sent over it, so
    its certificate is not checked here (the exporter's own attempt says whether it is trusted)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host):
                return True
    except (OSError, ValueError):
        return False
