"""A prototype OTLP trace encoder that writes the protobuf bytes directly: a measurement, not a path.

Issue 26 asks for an encoder "chosen by measurement". This one is the other candidate beside
``opentelemetry-exporter-otlp-proto-common``'s ``encode_spans`` (which builds an
``opentelemetry-proto`` message object per span, attribute and value, then serialises them):
it appends each field's tag, length and bytes to one buffer, and caches what repeats from span
to span (an attribute key's encoded prefix, a resource's and scope's whole encoding).
``benchmarks/otlp_encode.py`` times both on the same batches and checks that this one's bytes
decode to a message equal to ``encode_spans``' (field order aside, the same request). It covers
what a request span of flask-sigobs holds (string, bool, int, float and homogeneous sequence
values, events, links, status, trace state); nothing in the library uses it.
"""

from __future__ import annotations

import struct
from typing import Any, Sequence

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_SMALL = [bytes((n,)) for n in range(128)]


def _varint(value: int) -> bytes:
    if value < 128 and value >= 0:
        return _SMALL[value]
    value &= 0xFFFFFFFFFFFFFFFF  # int64 two's complement: ten bytes for a negative value
    out = bytearray()
    while value > 127:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    """An AnyValue's bytes (a oneof: its field is written even when it holds the default)."""
    kind = type(value)
    if kind is str:
        data = value.encode("utf-8")
        return b"\x0a" + _varint(len(data)) + data
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        return b"\x18" + _varint(value)
    if kind is float:
        return b"\x21" + _pack_double(value)
    if kind is bytes:
        return b"\x3a" + _varint(len(value)) + value
    if isinstance(value, Sequence):
        items = b"".join(_field(b"\x0a", _any_value(item)) for item in value)
        return _field(b"\x2a", items)
    raise TypeError(f"prototype encoder: no AnyValue for {kind.__name__}")


class DirectEncoder:
    """Encodes SDK ``ReadableSpan`` batches into an ExportTraceServiceRequest's bytes."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}  # attribute key -> the KeyValue's key field, encoded
        self._resources: dict[Any, bytes] = {}
        self._scopes: dict[Any, bytes] = {}

    def _key(self, key: str) -> bytes:
        encoded = self._keys.get(key)
        if encoded is None:
            encoded = _field(b"\x0a", key.encode("utf-8"))
            if len(self._keys) < 4096:  # bounded: keys are few, values are not cached
                self._keys[key] = encoded
        return encoded

    def _attributes(self, tag: bytes, attributes: Any) -> list[bytes]:
        if not attributes:
            return []
        key = self._key
        out = []
        for name, value in attributes.items():
            any_value = _any_value(value)
            pair = key(name) + b"\x12" + _varint(len(any_value)) + any_value
            out.append(tag + _varint(len(pair)) + pair)
        return out

    def _resource(self, resource: Any) -> bytes:
        encoded = self._resources.get(resource)
        if encoded is None:
            body = b"".join(self._attributes(b"\x0a", resource.attributes))
            encoded = self._resources[resource] = _field(b"\x0a", body)
        return encoded

    def _scope(self, scope: Any) -> bytes:
        encoded = self._scopes.get(scope)
        if encoded is None:
            parts = []
            if scope is not None:
                if scope.name:
                    parts.append(_field(b"\x0a", scope.name.encode("utf-8")))
                if scope.version:
                    parts.append(_field(b"\x12", scope.version.encode("utf-8")))
                parts += self._attributes(b"\x1a", scope.attributes)
            encoded = self._scopes[scope] = _field(b"\x0a", b"".join(parts))
        return encoded

    def span(self, span: Any) -> bytes:
        context = span.context
        parts = [b"\x0a\x10" + context.trace_id.to_bytes(16, "big"), b"\x12\x08" + context.span_id.to_bytes(8, "big")]
        if context.trace_state:
            parts.append(_field(b"\x1a", ",".join(f"{k}={v}" for k, v in context.trace_state.items()).encode()))
        parent = span.parent
        if parent:
            parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
        parts.append(_field(b"\x2a", span.name.encode("utf-8")))
        parts.append(b"\x30" + _SMALL[span.kind.value + 1])  # SpanKind.INTERNAL (0) is proto's 1
        if span.start_time:
            parts.append(b"\x39" + _pack_fixed64(span.start_time))
        if span.end_time:
            parts.append(b"\x41" + _pack_fixed64(span.end_time))
        parts += self._attributes(b"\x4a", span.attributes)
        if span.dropped_attributes:
            parts.append(b"\x50" + _varint(span.dropped_attributes))
        for event in span.events:
            body = [b"\x09" + _pack_fixed64(event.timestamp) if event.timestamp else b"",
                    _field(b"\x12", event.name.encode("utf-8"))]
            body += self._attributes(b"\x1a", event.attributes)
            if event.dropped_attributes:
                body.append(b"\x20" + _varint(event.dropped_attributes))
            parts.append(_field(b"\x5a", b"".join(body)))
        if span.dropped_events:
            parts.append(b"\x60" + _varint(span.dropped_events))
        for link in span.links:
            body = [b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big"),
                    b"\x12\x08" + link.context.span_id.to_bytes(8, "big")]
            body += self._attributes(b"\x22", link.attributes)
            if link.dropped_attributes:
                body.append(b"\x28" + _varint(link.dropped_attributes))
            body.append(b"\x35" + _pack_fixed32(0x300 if link.context.is_remote else 0x100))
            parts.append(_field(b"\x6a", b"".join(body)))
        if span.dropped_links:
            parts.append(b"\x70" + _varint(span.dropped_links))
        status = span.status
        if status is not None:
            body = b""
            if status.description:
                body += _field(b"\x12", status.description.encode("utf-8"))
            if status.status_code.value:
                body += b"\x18" + _SMALL[status.status_code.value]
            parts.append(_field(b"\x7a", body))
        # flags: the SDK's encoder sets HAS_IS_REMOTE, and IS_REMOTE for a remote parent
        parts.append(b"\x85\x01" + _pack_fixed32(0x300 if parent is not None and parent.is_remote else 0x100))
        return b"".join(parts)

    def encode(self, spans: Sequence[Any]) -> bytes:
        grouped: dict[Any, dict[Any, list[bytes]]] = {}
        for span in spans:
            scopes = grouped.setdefault(span.resource, {})
            scopes.setdefault(span.instrumentation_scope or None, []).append(
                _field(b"\x12", self.span(span)))
        out = []
        for resource, scopes in grouped.items():
            body = [self._resource(resource)]
            for scope, encoded in scopes.items():
                scope_body = self._scope(scope) + b"".join(encoded)
                if scope is not None and scope.schema_url:
                    scope_body += _field(b"\x1a", scope.schema_url.encode("utf-8"))
                body.append(_field(b"\x12", scope_body))
            if resource.schema_url:
                body.append(_field(b"\x1a", resource.schema_url.encode("utf-8")))
            out.append(_field(b"\x0a", b"".join(body)))
        return b"".join(out)
