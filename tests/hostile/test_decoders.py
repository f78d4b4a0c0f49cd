"""Hostile bytes against every decoder that reads untrusted input, and validation after it.

The promise (docs/DESIGN.md §1, §8.8, classtrace/codec.py): bytes either decode or raise
:class:`~classtrace.errors.DecodeError` keeping them, so a poison input becomes a dead letter or
a 400, never a crash. What decodes is then judged by ``classtrace.validation.read_event``, which
either returns or raises :class:`~classtrace.errors.ValidationError`. What the gateway writes
(the re-encoded batch) must decode again downstream, and an accepted event never carries a
non-finite number into the metrics.

Inputs: arbitrary bytes, valid encodings mutated on the wire (bit flips, truncations, wire types,
huge and overlong varints, lying lengths, duplicated and unknown fields, deep group nesting), and
JSON text with what JSON parsers trip on (duplicate keys, lone surrogates, NUL, non-UTF-8,
NaN/Infinity, huge numbers, deep nesting, wrong shapes). Each property runs a short budget by
default and a long one under ``-m hostile_long``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
import pytest
from google.protobuf import message as _message
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

from classtrace.codec import (
    batch_from_json,
    batch_to_json,
    decode_batch,
    decode_event,
    decode_message,
    encode_batch,
)
from classtrace.errors import DecodeError, ValidationError
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from classtrace.validation import read_event
from tests.helpers.strategies import NOW, event_batches
from tests.hostile.support import BUDGETS, budget_settings

# Every message classtrace decodes from bytes it did not write itself in this process: HTTP bodies
# and Kafka records (events, metrics, dead letters, the device registry), spooled events.
MESSAGE_TYPES: list[type[_message.Message]] = [
    pb.EventBatch,
    pb.Event,
    ppb.MetricBatch,
    ppb.DeadLetter,
    ppb.DeviceRegistration,
]


# --- what every decoded value must survive --------------------------------------------------------


def _judge(event: pb.Event) -> None:
    """read_event passes or raises ValidationError; a passed event's numbers are finite."""
    try:
        read_event(event, NOW)
    except ValidationError:
        return
    payload = event.WhichOneof("payload")
    assert payload is not None, "an event without payload passed validation"
    for field, value in getattr(event, payload).ListFields():
        if field.type in (field.TYPE_FLOAT, field.TYPE_DOUBLE):
            assert math.isfinite(value), f"{payload}.{field.name}={value} passed validation"


def _use_batch(batch: pb.EventBatch) -> None:
    """Touch every event as the gateway does, and check that what it would write reads back."""
    for event in batch.events:
        _judge(event)
    written = encode_batch(batch)
    assert encode_batch(decode_batch(written)) == written


def _decode_bytes(decode: Callable[[bytes], Any], raw: bytes) -> Any | None:
    """``decode(raw)``, or None when it raised a DecodeError that kept the bytes."""
    try:
        return decode(raw)
    except DecodeError as exc:
        assert exc.raw == raw
        return None


def _check_protobuf(raw: bytes) -> None:
    batch = _decode_bytes(decode_batch, raw)
    if batch is not None:
        _use_batch(batch)
    event = _decode_bytes(decode_event, raw)
    if event is not None:
        _judge(event)
    for cls in MESSAGE_TYPES:
        decoded = _decode_bytes(partial(decode_message, cls, topic="t", partition=0, offset=7), raw)
        if decoded is not None:
            decoded.SerializeToString()  # every field readable: nothing is left to fail lazily later


def _check_json(body: bytes) -> None:
    batch = _decode_bytes(batch_from_json, body)
    if batch is not None:
        _use_batch(batch)


# --- protobuf wire mutations ----------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # negative numbers as protobuf writes them: ten bytes
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int] | None:
    value = shift = 0
    while pos < len(buf) and shift < 70:
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None


def _fields(buf: bytes, start: int, end: int, depth: int = 0) -> list[tuple[int, int, int, int]]:
    """``(tag_start, value_start, value_end, wire_type)`` of every field of a valid encoding,
    nested messages included (a length-delimited value that parses as fields is walked too)."""
    out: list[tuple[int, int, int, int]] = []
    pos = start
    while pos < end:
        tag = _read_varint(buf, pos)
        if tag is None:
            return out
        key, value_start = tag
        wire = key & 7
        if wire == 0:
            got = _read_varint(buf, value_start)
            if got is None:
                return out
            value_end = got[1]
        elif wire == 1:
            value_end = value_start + 8
        elif wire == 5:
            value_end = value_start + 4
        elif wire == 2:
            got = _read_varint(buf, value_start)
            if got is None:
                return out
            length, value_start = got
            value_end = value_start + length
            if depth < 8:
                out.extend(_fields(buf, value_start, min(value_end, end), depth + 1))
        else:
            return out
        out.append((pos, value_start, value_end, wire))
        pos = value_end
    return out


_HUGE_VARINTS = [
    _varint(2**64 - 1),
    _varint(2**63),
    _varint(-1),
    b"\xff" * 10 + b"\x01",  # eleven bytes: longer than any varint may be
    b"\x80" * 9 + b"\x00",  # overlong zero
    b"\xff" * 9 + b"\x7f",  # overflows 64 bits
]
_LYING_LENGTHS = [
    _varint(2**31 - 1),
    _varint(2**32 + 5),
    _varint(2**64 - 1),
    b"\xff\xff\xff\xff\x0f",
    b"\x80",
]


@st.composite
def _unknown_field(draw: DrawFn) -> bytes:
    number = draw(
        st.sampled_from([0, 15, 16, 127, 19_000, 19_999, 2**29 - 1, 2**29]) | st.integers(1, 2**29 - 1)
    )
    wire = draw(st.integers(0, 7))
    tag = _varint(number << 3 | wire)
    if wire == 2:
        body = draw(st.binary(max_size=32))
        return tag + _varint(len(body)) + body
    return tag + draw(st.binary(max_size=10))


@st.composite
def mutated_protobuf(draw: DrawFn) -> bytes:
    """A valid EventBatch encoding with one to four wire-level mutations."""
    buf = bytearray(encode_batch(draw(event_batches(max_size=3))))
    for _ in range(draw(st.integers(1, 4))):
        fields = _fields(bytes(buf), 0, len(buf))
        kind = draw(
            st.sampled_from(
                [
                    "flip",
                    "truncate",
                    "wire_type",
                    "huge_varint",
                    "lying_length",
                    "duplicate",
                    "unknown",
                    "nest",
                ]
            )
        )
        if kind == "flip" and buf:
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate" and buf:
            del buf[draw(st.integers(0, len(buf) - 1)) :]
        elif kind == "unknown":
            at = draw(st.sampled_from([0, len(buf), *(f[0] for f in fields)]))
            buf[at:at] = draw(_unknown_field())
        elif kind == "nest":
            depth = draw(st.integers(1, 3000))
            group = b"\x7b" * depth + b"\x7c" * draw(
                st.sampled_from([depth, depth - 1, 0])
            )  # field 15, groups
            buf[len(buf) :] = group
        elif fields:
            tag_start, value_start, value_end, wire = draw(st.sampled_from(fields))
            tag_end = _read_varint(bytes(buf), tag_start)
            assert tag_end is not None
            if kind == "wire_type":
                key = tag_end[0]
                buf[tag_start : tag_end[1]] = _varint(
                    key & ~7 | draw(st.sampled_from([w for w in range(8) if w != wire]))
                )
            elif kind == "huge_varint" and wire == 0:
                buf[value_start:value_end] = draw(st.sampled_from(_HUGE_VARINTS))
            elif kind == "lying_length" and wire == 2:
                length_start = tag_end[1]
                buf[length_start:value_start] = draw(st.sampled_from(_LYING_LENGTHS))
            elif kind == "duplicate":
                buf[value_end:value_end] = buf[tag_start:value_end]
    return bytes(buf)


@pytest.mark.parametrize("budget", BUDGETS)
def test_arbitrary_bytes_decode_or_raise_decode_error(budget):
    @budget_settings(budget)
    @given(st.binary(max_size=4096))
    @example(b"\x0a")  # a length with nothing after it
    @example(b"\x0a\xff\xff\xff\xff\x0f")  # a 4 GiB event in a few bytes
    @example(b"\x7b" * 100_000)  # unterminated groups, deeper than any parser recurses
    @example(b"\x0a\x02\x3a\x00")  # event with received_at of length 0
    def check(raw: bytes) -> None:
        _check_protobuf(raw)

    check()


@pytest.mark.parametrize("budget", BUDGETS)
def test_mutated_encodings_decode_or_raise_decode_error(budget):
    @budget_settings(budget)
    @given(mutated_protobuf())
    def check(raw: bytes) -> None:
        _check_protobuf(raw)

    check()


@pytest.mark.parametrize("depth", [10, 99, 100, 101, 1_000, 100_000])
def test_deeply_nested_groups_are_a_decode_error_or_skipped(depth):
    """Unknown groups nested ``depth`` deep inside an event: decoded (the unknown field dropped
    when re-encoded by the gateway) or refused, never a RecursionError or a crash."""
    nested = b"\x7b" * depth + b"\x7c" * depth
    event = pb.Event(event_id="6b3a7c1e-1111-4222-8333-444455556666", school_id="sch-A")
    raw = encode_batch([event]) + b"\x0a" + _varint(len(nested)) + nested
    _check_protobuf(raw)


# --- JSON text ------------------------------------------------------------------------------------

# Tokens JSON parsers and proto3 JSON mappers trip on, as raw JSON text.
_HOSTILE_SCALARS = [
    "NaN",
    "Infinity",
    "-Infinity",
    '"NaN"',
    '"Infinity"',
    '"-Infinity"',
    "1e400",
    "-1e400",
    "1e-400",
    "-0",
    "123456789012345678901234567890",
    "-9223372036854775809",
    "18446744073709551616",
    "4294967296",
    '"18446744073709551616"',
    "1.5",
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\ud83d\\ude00"',
    '"\\u0000"',
    '"sch-A\\u0000"',
    '"\\x"',
    '"\xff\xfe"',
    '"\u202e\u200b"',
    "true",
    "null",
    '""',
    "[]",
    "{}",
    '"DEVICE_KIND_TABLET"',
    '"DEVICE_KIND_TOASTER"',
    '"VERB_ANSWERED"',
    "99",
    '"2026-11-23T03:59:00Z"',
    '"2026-11-23T03:59:00.123456789+08:00"',
    '"9999-12-31T23:59:59Z"',
    '"0001-01-01T00:00:00Z"',
    '"10000-01-01T00:00:00Z"',
    '"2026-13-45T25:61:61Z"',
    '"2026-11-23T03:59:00.0000000001Z"',
    '"6b3a7c1e-1111-4222-8333-444455556666"',
    '"ps_0123456789abcdef0123456789abcdef"',
]
_UNPARSEABLE = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\x"',
    '"\xff\xfe"',
]
_FIELD_NAMES = [
    *(f.name for f in pb.Event.DESCRIPTOR.fields),
    *(f.json_name for f in pb.Event.DESCRIPTOR.fields),
    *(
        f.name
        for m in (pb.LearningTrace, pb.DeviceHeartbeat, pb.ClassObservation)
        for f in m.DESCRIPTOR.fields
    ),
    "events",
    "seconds",
    "nanos",
    "bogus",
    "",
    "\\u0000",
    "@type",
]


def _json_text() -> st.SearchStrategy[str]:
    # Tokens orjson refuses make the whole text "not JSON"; drawn rarely, so most texts reach the
    # proto3 JSON mapping and validation.
    parseable = [t for t in _HOSTILE_SCALARS if t not in _UNPARSEABLE]
    scalars = st.one_of(
        st.sampled_from(parseable),
        st.text(max_size=12).map(lambda s: orjson.dumps(s).decode()),
        st.sampled_from(parseable),
        st.sampled_from(_UNPARSEABLE),
    )
    keys = st.sampled_from(_FIELD_NAMES).map(lambda k: f'"{k}"')
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]")
            # a list of pairs, not a dict: duplicate keys stay in the text
            | st.lists(st.tuples(keys, inner), max_size=5).map(
                lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
            )
        ),
        max_leaves=30,
    )


@st.composite
def hostile_json(draw: DrawFn) -> bytes:
    """JSON-ish text shaped like a batch (sometimes not), in an encoding a device might get wrong."""
    inner = _json_text()
    text = draw(
        st.one_of(
            inner.map(lambda events: '{"events":' + events + "}"),
            st.lists(inner, max_size=3).map(lambda evs: '{"events":[' + ",".join(evs) + "]}"),
            inner,
        )
    )
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "utf-16", "latin-1", "surrogatepass"]))
    if encoding == "surrogatepass":
        return text.encode("utf-8", "surrogatepass")
    return text.encode(encoding, "replace")


@st.composite
def mutated_json(draw: DrawFn) -> bytes:
    """The proto3 JSON of a valid batch with one to three text-level mutations."""
    doc = orjson.loads(batch_to_json(draw(event_batches(max_size=3)), proto_field_names=draw(st.booleans())))
    body = orjson.dumps(doc)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["replace_value", "duplicate_key", "truncate", "raw_byte", "nest", "reshape"])
        )
        if kind == "truncate" and body:
            body = body[: draw(st.integers(0, len(body) - 1))]
        elif kind == "raw_byte":
            at = draw(st.integers(0, len(body)))
            body = body[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80"])) + body[at:]
        elif kind == "nest":
            depth = draw(st.integers(1, 5000))
            body = body.replace(b'"events":', b'"events":' + b"[" * depth, 1) + b"]" * depth
        elif kind == "duplicate_key":
            key = draw(st.sampled_from(_FIELD_NAMES))
            value = draw(st.sampled_from(_HOSTILE_SCALARS))
            body = body.replace(b"{", f'{{"{key}":{value},'.encode(), draw(st.integers(1, 3)))
        elif kind == "reshape":
            # an event or submessage that is not an object: a string, an array, null
            shape = draw(st.sampled_from([b'""', b"[]", b"null", b"[[]]", b'"x"', b"0"]))
            body = body.replace(b'"events":[', b'"events":[' + shape + b",", 1)
        else:
            token = draw(st.sampled_from(_HOSTILE_SCALARS)).encode("utf-8", "replace")
            colon = [i for i, c in enumerate(body) if c == ord(":")]
            if colon:
                at = draw(st.sampled_from(colon)) + 1
                end = at
                while end < len(body) and body[end] not in b",}]":
                    end += 1
                body = body[:at] + token + body[end:]
    return body


@pytest.mark.parametrize("budget", BUDGETS)
def test_arbitrary_bodies_parse_as_json_or_raise_decode_error(budget):
    @budget_settings(budget)
    @given(st.binary(max_size=2048))
    def check(body: bytes) -> None:
        _check_json(body)

    check()


@pytest.mark.parametrize("budget", BUDGETS)
def test_hostile_json_parses_or_raises_decode_error(budget):
    @budget_settings(budget)
    @given(hostile_json())
    def check(body: bytes) -> None:
        _check_json(body)

    check()


@pytest.mark.parametrize("budget", BUDGETS)
def test_mutated_json_parses_or_raises_decode_error(budget):
    @budget_settings(budget)
    @given(mutated_json())
    def check(body: bytes) -> None:
        _check_json(body)

    check()


@pytest.mark.parametrize(
    "body",
    [
        b'{"events":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"events":[{"trace":' + b'{"bogus":' * 900 + b"1" + b"}" * 900 + b"}]}",
        b'{"events":[{"seq":"18446744073709551616"}]}',
        b'{"events":[{"seq":-1}]}',
        b'{"events":[{"occurred_at":"10000-01-01T00:00:00Z"}]}',
        b'{"events":[{"occurred_at":{"seconds":1}}]}',
        b'{"events":[{"heartbeat":{"battery_pct":"NaN","interval_s":30}}]}',
        b'{"events":[{"teaching":{"confidence":"Infinity"}}]}',
        b'{"events":[{"school_id":"\\ud800"}]}',
        b'{"events":[{"school_id":"sch-A\\u0000"}]}',
        b'{"events":[],"events":[{}]}',
        b'{"events":[{"event_id":"a","eventId":"b"}]}',
        b"\xef\xbb\xbf{}",
        b'{"events":[{"@type":"x"}]}',
    ],
    ids=[
        "deep-arrays",
        "deep-objects",
        "uint64-overflow",
        "negative-uint",
        "year-10000",
        "timestamp-as-object",
        "nan-battery",
        "infinite-confidence",
        "lone-surrogate",
        "nul-in-id",
        "duplicate-events-key",
        "both-name-spellings",
        "bom",
        "any-type-key",
    ],
)
def test_known_hostile_json_parses_or_raises_decode_error(body):
    _check_json(body)
