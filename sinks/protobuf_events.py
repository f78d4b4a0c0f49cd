"""EventBatch records → one ``FORMAT ProtobufList`` insert that ClickHouse parses.

The sink's fast path for ``events`` (migration 0006). A record on classtrace.events.v1 is an
``EventBatch`` (``repeated Event events = 1``), which is exactly ClickHouse's ProtobufList
envelope (a message whose field 1 repeats the row message). The events in it are trusted (the
gateway and the SDK validate before they write, and serialise with upb), so once a record has
decoded, the sink passes the record's own bytes on: concatenated records are one envelope (a
repeated field's occurrences add up), prefixed with its length. ClickHouse parses them in C++
into ``events_ingest`` (a Null table) and the view ``events_ingest_mv`` writes ``events`` rows.
Flattening events into Python column lists cost ~10 µs/event and clickhouse-connect's
re-encoding ~20 more; this path costs the decode check and a copy (docs/FIELD-NOTES.md,
docs/CAPACITY.md).

The schema ClickHouse reads is generated here from the compiled descriptors, so it cannot drift
from ``proto/``: wire-compatible (same numbers and types), flattened into one file (no imports —
``google.protobuf.Timestamp`` is spelled out) and passed inline with the insert
(``format_schema_source = 'string'``), so a ClickHouse server needs no schema file deployed.

A block ClickHouse refuses here is written again through the row path (:mod:`sinks.rows`),
whose bisection isolates the refused rows: this path is for speed, never the only way in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from classtrace.codec import varint
from classtrace.v1 import events_pb2 as pb
from sinks.rows import Block, Source, add_event_batch, new_block

__all__ = ["INGEST_TABLE", "RawEvents", "ingest_settings", "schema_text"]

INGEST_TABLE = "events_ingest"
"""The Null landing table of migration 0006."""

_SCALARS: dict[int, str] = {
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_FIXED32: "fixed32",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    FieldDescriptor.TYPE_SFIXED64: "sfixed64",
    FieldDescriptor.TYPE_SINT32: "sint32",
    FieldDescriptor.TYPE_SINT64: "sint64",
}


def _flat(descriptor: Descriptor | EnumDescriptor) -> str:
    return descriptor.full_name.replace(".", "_")


def _field_line(f: FieldDescriptor) -> tuple[str | None, str]:
    """(oneof name or None, the field's declaration)."""
    if f.message_type is not None:
        type_name = _flat(f.message_type)
    elif f.enum_type is not None:
        type_name = _flat(f.enum_type)
    else:
        type_name = _SCALARS[f.type]
    label = "repeated " if f.is_repeated else ""
    oneof = f.containing_oneof
    if oneof is not None and oneof.name.startswith("_"):  # synthetic: a proto3 `optional` field
        label, oneof = "optional ", None
    return (oneof.name if oneof else None), f"{label}{type_name} {f.name} = {f.number};"


@cache
def schema_text(root: Descriptor = pb.Event.DESCRIPTOR) -> str:
    """A self-contained proto3 schema, wire-compatible with ``root`` and everything it uses."""
    messages: dict[str, Descriptor] = {}
    enums: dict[str, EnumDescriptor] = {}
    order: list[Descriptor] = []

    def visit(message: Descriptor) -> None:
        if message.full_name in messages:
            return
        messages[message.full_name] = message
        for f in message.fields:
            if f.message_type is not None:
                visit(f.message_type)
            elif f.enum_type is not None:
                enums[f.enum_type.full_name] = f.enum_type
        order.append(message)

    visit(root)
    lines = ['syntax = "proto3";']
    for enum in enums.values():  # proto3 enum values share one scope: keep them prefixed
        lines.append(f"enum {_flat(enum)} {{")
        lines += [f"  {_flat(enum)}_{value.name} = {value.number};" for value in enum.values]
        lines.append("}")
    for message in order:
        lines.append(f"message {_flat(message)} {{")
        oneofs: dict[str, list[str]] = {}
        for f in message.fields:
            oneof, line = _field_line(f)
            if oneof is None:
                lines.append(f"  {line}")
            else:
                oneofs.setdefault(oneof, []).append(line)
        for name, members in oneofs.items():
            lines += [f"  oneof {name} {{", *(f"    {m}" for m in members), "  }"]
        lines.append("}")
    return "\n".join(lines) + "\n"


def ingest_settings() -> dict[str, Any]:
    """Settings of an ``events_ingest`` insert: the inline schema and its row message."""
    return {
        "format_schema_source": "string",
        "format_schema": schema_text(),
        "format_schema_message_name": _flat(pb.Event.DESCRIPTOR),
    }


@dataclass
class RawEvents:
    """EventBatch bytes (records that decoded) of one sink batch, with where each came from."""

    parts: list[bytes] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    events: int = 0

    def __len__(self) -> int:
        return self.events

    def add(self, value: bytes, source: Source, n_events: int) -> None:
        """Add EventBatch bytes ``value`` holding ``n_events`` events."""
        self.parts.append(value)
        self.sources.append(source)
        self.counts.append(n_events)
        self.events += n_events

    def body(self) -> bytes:
        """The ProtobufList input: one length-prefixed envelope holding every event."""
        envelope = b"".join(self.parts)
        return varint(len(envelope)) + envelope

    def rows(self, now_s: float) -> Block:
        """The same events as an ``events`` row block (the fallback path).

        ``now_s`` stamps ``received_at`` where an event has none, as the view does. Every part
        decoded when it was added, so it decodes again here.
        """
        block = new_block("events")
        for value, source in zip(self.parts, self.sources, strict=True):
            add_event_batch(pb.EventBatch.FromString(value), source, now_s, block)
        return block
