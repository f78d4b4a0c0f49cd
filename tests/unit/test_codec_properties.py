"""Properties of the codec and of validation over generated events (tests/strategies.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

from classtrace.codec import (
    batch_from_json,
    batch_to_json,
    datetime_to_ts,
    decode_batch,
    decode_event,
    encode_batch,
    ms_to_ts,
    ns_to_ts,
    seconds_to_ts,
    set_ts_now,
    split_ns,
    timestamp_field_bytes,
    ts_to_datetime,
    ts_to_ms,
    ts_to_ns,
    ts_to_seconds,
)
from classtrace.errors import DecodeError
from classtrace.v1 import events_pb2 as pb
from classtrace.validation import check_event, validate_event
from tests.helpers.strategies import NOW, event_batches, events, invalid_events

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- round trips ----------------------------------------------------------------------------------


@PROPS
@given(event_batches())
def test_protobuf_round_trip(batch):
    raw = encode_batch(batch)
    assert decode_batch(raw) == batch
    assert encode_batch(list(batch.events)) == raw


@PROPS
@given(events())
def test_single_event_round_trip(event):
    assert decode_event(event.SerializeToString()) == event


@PROPS
@given(event_batches(), st.booleans())
def test_json_round_trip(batch, snake_case):
    body = batch_to_json(batch, proto_field_names=snake_case)
    assert batch_from_json(body) == batch


def test_json_accepts_enum_names_and_camel_case():
    body = orjson.dumps(
        {
            "events": [
                {
                    "eventId": "0b6f3c2e-5d1a-4c8e-9f4a-2f1e0c9b7a65",
                    "school_id": "sch-1",
                    "deviceKind": "DEVICE_KIND_TABLET",
                    "occurredAt": "2026-11-23T03:59:00.250Z",
                    "trace": {"studentId": "ps_" + "a" * 32, "verb": "VERB_VIEWED", "correct": False},
                }
            ]
        }
    )
    (event,) = batch_from_json(body).events
    assert event.device_kind == pb.DEVICE_KIND_TABLET
    assert event.trace.HasField("correct") and not event.trace.correct
    assert ts_to_ms(event.occurred_at) % 1000 == 250


# --- hostile input: only DecodeError --------------------------------------------------------------


@PROPS
@given(st.binary(max_size=512))
def test_random_bytes_raise_only_decode_error(raw):
    try:
        decode_batch(raw, topic="classtrace.events.v1", partition=3, offset=42)
    except DecodeError as exc:
        assert exc.raw == raw
        assert (exc.topic, exc.partition, exc.offset) == ("classtrace.events.v1", 3, 42)
        assert "offset=42" in str(exc)


@PROPS
@given(event_batches(max_size=3), st.data())
def test_corrupted_batches_raise_only_decode_error(batch, data):
    raw = bytearray(encode_batch(batch))
    if raw:
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        decode_batch(bytes(raw))
    except DecodeError as exc:
        assert exc.raw == bytes(raw)


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["DEVICE_KIND_CAMERA", "VERB_NOPE", "2026-11-23T04:00:00Z", "1e400", "NaN"]),
)
_KEYS = st.sampled_from(
    ["events", "event_id", "eventId", "occurred_at", "device_kind", "trace", "verb", "counts", "seq", "bogus"]
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=25,
)


@PROPS
@given(_JSON)
def test_random_json_raises_only_decode_error(doc):
    body = orjson.dumps(doc)
    try:
        batch_from_json(body)
    except DecodeError as exc:
        assert exc.raw == body


@st.composite
def _json_with_one_field_broken(draw: DrawFn):
    batch = draw(event_batches(max_size=3).filter(lambda b: len(b.events) > 0))
    doc = orjson.loads(batch_to_json(batch))
    event = doc["events"][draw(st.integers(0, len(doc["events"]) - 1))]
    key, value = draw(
        st.sampled_from(
            [
                ("device_kind", "DEVICE_KIND_TOASTER"),
                ("unknown_field", 1),
                ("occurred_at", "yesterday"),
                ("seq", -1),
                ("seq", "many"),
                ("school_id", 42),
                ("events", None),
            ]
        )
    )
    event[key] = value
    return orjson.dumps(doc)


@PROPS
@given(_json_with_one_field_broken())
def test_broken_json_events_raise_decode_error(body):
    with pytest.raises(DecodeError, match="proto3 JSON"):
        batch_from_json(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"events": 3}', "events must be an array, got int"),
        (b'{"events": null}', "events must be an array, got null"),
        (b'{"events": [[]]}', r"events\[0\] must be an object, got array"),
        (b'{"events": [{"trace": "x"}]}', r"events\[0\].trace must be an object, got string"),
        (b'{"evnts": []}', "proto3 JSON"),
        (b'{"events": [{"device_kind": "DEVICE_KIND_TOASTER"}]}', "DEVICE_KIND_TOASTER"),
    ],
)
def test_json_decode_errors_are_clear(body, message):
    with pytest.raises(DecodeError, match=message):
        batch_from_json(body)


def test_unknown_enum_numbers_survive_decoding_and_fail_validation():
    body = b'{"events": [{"device_kind": 99}]}'
    (event,) = batch_from_json(body).events
    assert event.device_kind == 99
    (again,) = decode_batch(encode_batch([event])).events
    assert again.device_kind == 99


# --- validation over generated events -------------------------------------------------------------


@PROPS
@given(events())
def test_generated_events_are_valid(event):
    validate_event(event, NOW)


@PROPS
@given(invalid_events())
def test_mutated_events_fail_on_the_mutated_field(case):
    event, field = case
    error = check_event(event, NOW)
    assert error is not None, f"expected a rejection on {field}"
    assert error.field == field, str(error)


@PROPS
@given(invalid_events())
def test_validation_survives_the_wire(case):
    """A rejection is the same after encoding: consumers judge what the producer judged."""
    event, field = case
    (decoded,) = decode_batch(encode_batch([event])).events
    error = check_event(decoded, NOW)
    assert error is not None and error.field == field


# --- timestamps -----------------------------------------------------------------------------------


# st.datetimes() takes naive bounds and attaches the zone to what it draws.
_OLDEST, _NEWEST = datetime(1900, 1, 1), datetime(2200, 1, 1)  # noqa: DTZ001


@PROPS
@given(st.integers(-(10**13), 10**13))
def test_ms_round_trip(ms):
    ts = ms_to_ts(ms)
    assert 0 <= ts.nanos < 1_000_000_000
    assert ts_to_ms(ts) == ms


@PROPS
@given(st.datetimes(timezones=st.just(UTC), min_value=_OLDEST, max_value=_NEWEST))
def test_datetime_round_trip(dt):
    ts = datetime_to_ts(dt)
    assert ts.ToDatetime(tzinfo=UTC) == dt
    assert ts_to_datetime(ts) == dt
    assert ts_to_datetime(ts).tzinfo is not None


def test_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="naive"):
        datetime_to_ts(datetime(2026, 1, 1))  # noqa: DTZ001


def test_set_ts_now():
    ts = pb.Event().received_at
    set_ts_now(ts, now_ns=1_790_000_000_123_456_789)
    assert (ts.seconds, ts.nanos) == (1_790_000_000, 123_456_789)
    set_ts_now(ts)
    assert abs(ts_to_datetime(ts) - datetime.now(UTC)) < timedelta(seconds=5)


@PROPS
@given(st.integers(-(10**19), 10**19))
def test_ns_round_trip(ns):
    ts = ns_to_ts(ns)
    assert (ts.seconds, ts.nanos) == split_ns(ns) and 0 <= ts.nanos < 1_000_000_000
    assert ts_to_ns(ts) == ns
    assert ts.ToNanoseconds() == ns  # the same instant protobuf's own helper reads


@PROPS
@given(st.floats(0, 4e9, allow_nan=False))
def test_seconds_round_trip(seconds):
    ts = seconds_to_ts(seconds)
    assert ts_to_ns(ts) == int(seconds * 1e9)
    assert abs(ts_to_seconds(ts) - seconds) < 1e-6


@PROPS
@given(st.integers(0, 2**63 - 1), st.integers(0, 10**19))
def test_timestamp_field_bytes_overwrite_both_fields(device_ns, now_ns):
    """Merged into an event, the bytes replace received_at entirely (zero seconds or nanos too)."""
    ev = pb.Event(event_id="e")
    ns_to_ts(device_ns, ev.received_at)
    ev.MergeFromString(
        timestamp_field_bytes(pb.Event.DESCRIPTOR.fields_by_name["received_at"].number, now_ns)
    )
    assert ts_to_ns(ev.received_at) == now_ns and ev.event_id == "e"
