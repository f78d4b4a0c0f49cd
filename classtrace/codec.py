"""The one place bytes become classtrace messages and back: protobuf, proto3 JSON, timestamps.

Every failure to decode is a :class:`~classtrace.errors.DecodeError` that keeps the raw bytes
and, for a Kafka record, topic/partition/offset: a poison record is dead-lettered as received,
never crashes a consumer. Decoding checks form only; the rules of docs/DESIGN.md §4 are
:mod:`classtrace.validation`'s. In particular an unknown enum *name* in JSON fails here, while an
unknown enum *number* (kept by proto3's open enums, in binary and JSON alike) decodes and is
rejected by validation.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf import message as _message
from google.protobuf.descriptor import Descriptor
from google.protobuf.timestamp_pb2 import Timestamp

from classtrace.errors import DecodeError
from classtrace.v1 import events_pb2 as pb

__all__ = [
    "batch_from_json",
    "batch_to_json",
    "datetime_to_ts",
    "decode_batch",
    "decode_event",
    "decode_message",
    "encode_batch",
    "ms_to_ts",
    "ns_to_ts",
    "seconds_to_ts",
    "set_ts_now",
    "split_ns",
    "timestamp_field_bytes",
    "ts_to_datetime",
    "ts_to_ms",
    "ts_to_ns",
    "ts_to_seconds",
    "varint",
]

M = TypeVar("M", bound=_message.Message)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# json_format wraps what it finds in ParseError; the rest is defence in depth for a pure-Python
# parser fed hostile input (a leaked ValueError/TypeError must not crash the gateway).
_JSON_ERRORS = (json_format.ParseError, ValueError, TypeError, RecursionError)


# --- protobuf bytes -------------------------------------------------------------------------------


def _where(topic: str | None, partition: int | None, offset: int | None) -> str:
    if topic is None and partition is None and offset is None:
        return ""
    return f" at topic={topic} partition={partition} offset={offset}"


def decode_message(
    cls: type[M],
    raw: bytes,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> M:
    """Parse ``raw`` as a ``cls`` message, or raise DecodeError keeping the bytes and location."""
    data = bytes(raw)  # memoryview/bytearray from clients; also the copy the error keeps
    try:
        return cls.FromString(data)
    except _message.DecodeError as exc:
        name = cls.DESCRIPTOR.name
        raise DecodeError(
            f"not a {name}: {exc} ({len(data)} bytes{_where(topic, partition, offset)})",
            raw=data,
            topic=topic,
            partition=partition,
            offset=offset,
        ) from exc


def decode_batch(
    raw: bytes,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> pb.EventBatch:
    """Decode an ``EventBatch`` (a record of classtrace.events.v1, or an HTTP body).

    >>> decode_batch(encode_batch([])).events
    []
    """
    return decode_message(pb.EventBatch, raw, topic=topic, partition=partition, offset=offset)


def decode_event(raw: bytes) -> pb.Event:
    """Decode one ``Event`` (e.g. from an edge spool, which stores events one by one)."""
    return decode_message(pb.Event, raw)


def encode_batch(events: pb.EventBatch | Iterable[pb.Event]) -> bytes:
    """Serialise events (or an existing batch, without copying) as ``EventBatch`` bytes."""
    if isinstance(events, pb.EventBatch):
        return events.SerializeToString()
    batch = pb.EventBatch()
    batch.events.extend(events)
    return batch.SerializeToString()


# --- proto3 JSON ----------------------------------------------------------------------------------


def batch_from_json(body: bytes) -> pb.EventBatch:
    """Parse the proto3 JSON form of an ``EventBatch``: ``{"events": [...]}``.

    Field names may be snake_case or lowerCamelCase, enums names or numbers, timestamps
    RFC 3339 strings (the proto3 JSON mapping). Unknown fields and unknown enum names are a
    DecodeError, so a typo is reported instead of silently dropped.
    """
    data = bytes(body)
    try:
        obj: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}", raw=data) from exc
    if not isinstance(obj, dict):
        found = type(obj).__name__
        raise DecodeError(f'expected a JSON object {{"events": [...]}}, got {found}', raw=data)
    _check_shape(obj, pb.EventBatch.DESCRIPTOR, "", data)
    batch = pb.EventBatch()
    try:
        json_format.ParseDict(obj, batch)
    except _JSON_ERRORS as exc:
        raise DecodeError(f"not an EventBatch in proto3 JSON: {exc}", raw=data) from exc
    return batch


def _check_shape(obj: dict[str, Any], descriptor: Descriptor, path: str, raw: bytes) -> None:
    """Where the schema has a message or a list, the JSON has an object or an array.

    protobuf's ParseDict reads any iterable as a message (``[]`` or ``""`` as an empty event)
    and ``null`` as an empty list; both would pass a malformed body as a valid, empty one.
    """
    for name, value in obj.items():
        field = descriptor.fields_by_name.get(name) or descriptor.fields_by_camelcase_name.get(name)
        if field is None or field.message_type is None or field.message_type.full_name in _JSON_SCALARS:
            continue  # unknown names and scalars: ParseDict's own errors are precise
        where = f"{path}{name}"
        if field.is_repeated:
            if not isinstance(value, list):
                raise DecodeError(f"{where} must be an array, got {_json_type(value)}", raw=raw)
            items: list[tuple[int, Any]] = list(enumerate(value))
        else:
            items = [(-1, value)] if value is not None else []
        for i, item in items:
            at = where if i < 0 else f"{where}[{i}]"
            if not isinstance(item, dict):
                raise DecodeError(f"{at} must be an object, got {_json_type(item)}", raw=raw)
            _check_shape(item, field.message_type, f"{at}.", raw)


_JSON_SCALARS = frozenset({"google.protobuf.Timestamp"})
"""Messages whose proto3 JSON form is not an object."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    names: dict[type, str] = {list: "array", dict: "object", str: "string"}
    return names.get(type(value), type(value).__name__)


def batch_to_json(batch: pb.EventBatch, *, proto_field_names: bool = True) -> bytes:
    """Serialise an ``EventBatch`` as proto3 JSON bytes.

    snake_case names by default (the names of docs/DESIGN.md §4 and of the ClickHouse columns);
    every proto3 JSON parser accepts them as well as lowerCamelCase.
    """
    obj = json_format.MessageToDict(batch, preserving_proto_field_name=proto_field_names)
    return orjson.dumps(obj)


# --- timestamps -----------------------------------------------------------------------------------


def ts_to_ms(ts: Timestamp) -> int:
    """Epoch milliseconds of a Timestamp (floor), the unit of ClickHouse DateTime64(3)."""
    return ts.seconds * 1000 + ts.nanos // 1_000_000


def ms_to_ts(ms: int, ts: Timestamp | None = None) -> Timestamp:
    """Set ``ts`` (or a new Timestamp) to epoch milliseconds ``ms`` and return it."""
    out = Timestamp() if ts is None else ts
    seconds, millis = divmod(ms, 1000)  # floor division keeps nanos ≥ 0 before 1970
    out.seconds = seconds
    out.nanos = millis * 1_000_000
    return out


def split_ns(ns: int) -> tuple[int, int]:
    """Epoch nanoseconds as a Timestamp's ``(seconds, nanos)`` (floor: nanos ≥ 0 before 1970)."""
    return divmod(ns, 1_000_000_000)


def ns_to_ts(ns: int, ts: Timestamp | None = None) -> Timestamp:
    """Set ``ts`` (or a new Timestamp) to epoch nanoseconds ``ns`` and return it."""
    out = Timestamp() if ts is None else ts
    out.seconds, out.nanos = divmod(ns, 1_000_000_000)
    return out


def ts_to_ns(ts: Timestamp) -> int:
    """Epoch nanoseconds of a Timestamp."""
    return ts.seconds * 1_000_000_000 + ts.nanos


def seconds_to_ts(seconds: float, ts: Timestamp | None = None) -> Timestamp:
    """Set ``ts`` (or a new Timestamp) to epoch seconds ``seconds`` (a float clock, as
    ``time.time()``; nanoseconds as ``int(seconds * 1e9)``) and return it."""
    return ns_to_ts(int(seconds * 1e9), ts)


def ts_to_seconds(ts: Timestamp) -> float:
    """Epoch seconds of a Timestamp as a float (the receiver clocks' unit)."""
    return ts.seconds + ts.nanos * 1e-9


def set_ts_now(ts: Timestamp, now_ns: int | None = None) -> None:
    """Stamp ``ts`` with the current time (or ``now_ns`` epoch nanoseconds), e.g. received_at."""
    ns_to_ts(time.time_ns() if now_ns is None else now_ns, ts)


def timestamp_field_bytes(number: int, ns: int) -> bytes:
    """A message holding only Timestamp field ``number`` = epoch ``ns``, encoded by hand with
    *both* of its fields written even when 0.

    Merged into a parsed message (``MergeFromString``) it sets that field in one upb call,
    cheaper than reaching the submessage and assigning. Proto3 encoders leave out zero fields,
    and a merge keeps what a field absent from the merged bytes had, so writing both is what
    makes the merge overwrite a previous value entirely (e.g. a device's ``received_at``).
    Needs ``ns ≥ 0`` (varints of negative seconds are not written here).
    """
    seconds, nanos = divmod(ns, 1_000_000_000)
    inner = b"\x08" + varint(seconds) + b"\x10" + varint(nanos)
    return varint(number << 3 | 2) + varint(len(inner)) + inner


def ts_to_datetime(ts: Timestamp) -> datetime:
    """A UTC-aware datetime (microsecond precision) of a Timestamp."""
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def datetime_to_ts(dt: datetime, ts: Timestamp | None = None) -> Timestamp:
    """Set ``ts`` (or a new Timestamp) to an aware datetime; naive ones are refused (no zone)."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime: event time needs a timezone (use UTC)")
    out = Timestamp() if ts is None else ts
    delta = dt - _EPOCH
    out.seconds = delta.days * 86_400 + delta.seconds
    out.nanos = delta.microseconds * 1000
    return out


def varint(value: int) -> bytes:
    """``value`` (≥ 0) as a protobuf varint: for the few places that frame bytes by hand."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
