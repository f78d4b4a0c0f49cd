"""Every rule of docs/DESIGN.md §4: its good case passes, its bad case fails naming field and reason;
read_event returns what it read (property tests over generated events)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings

from classtrace.errors import ValidationError
from classtrace.v1 import events_pb2 as pb
from classtrace.validation import (
    _PAYLOAD_READERS,
    MAX_BATCH_EVENTS,
    EventFields,
    check_batch_size,
    check_event,
    read_event,
    split_events,
    validate_event,
)
from tests.helpers.event_cases import BAD, GOOD, _at, make
from tests.helpers.strategies import NOW, events, invalid_events


@pytest.mark.parametrize(("kind", "mutate"), [(k, m) for k, m, _ in GOOD], ids=[i for *_, i in GOOD])
def test_good_case_passes(kind, mutate):
    event = make(kind)
    mutate(event)
    validate_event(event, NOW)
    assert check_event(event, NOW) is None


@pytest.mark.parametrize(
    ("kind", "mutate", "field", "reason"),
    BAD,
    ids=[f"{f}:{r[:40]}" for _, _, f, r in BAD],
)
def test_bad_case_fails_with_reason(kind, mutate, field, reason):
    event = make(kind)
    mutate(event)
    with pytest.raises(ValidationError) as info:
        validate_event(event, NOW)
    assert info.value.field == field
    assert reason in str(info.value)  # what the sender is answered
    assert info.value.rule == f"{field}: {info.value.reason}"  # what is stored: no text value
    if info.value.got is not None:
        assert info.value.got not in info.value.rule
    returned = check_event(event, NOW)
    assert returned is not None and returned.field == field


@pytest.mark.parametrize("raw", ["20230517", "张三", "S-00042-ZHANG"])
def test_raw_student_id_is_never_echoed(raw):
    event = make("trace")
    event.trace.student_id = raw
    error = check_event(event, NOW)
    assert error is not None and raw not in str(error)


def test_occurred_at_message_names_the_time():
    event = make("trace")
    _at(312)(event)
    error = check_event(event, NOW)
    assert error is not None
    stamp = datetime.fromtimestamp(NOW + 312, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert str(error).startswith(f"occurred_at: {stamp} is 312 s in the future")


def test_now_as_aware_datetime_equals_epoch_seconds():
    event = make("trace")
    _at(299)(event)
    validate_event(event, datetime.fromtimestamp(NOW, UTC))
    with pytest.raises(ValidationError):
        validate_event(event, datetime.fromtimestamp(NOW, UTC) - timedelta(seconds=2))


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        validate_event(make("trace"), datetime(2026, 11, 23))  # noqa: DTZ001


def test_split_events_keeps_indexes_of_rejected():
    good, bad = make("trace"), make("trace")
    bad.school_id = "a b"
    ok, rejected = split_events([good, bad, good], NOW)
    assert ok == [good, good]
    assert [(i, e.field) for i, _, e in rejected] == [(1, "school_id")]


def test_batch_size_limit():
    check_batch_size(MAX_BATCH_EVENTS)
    with pytest.raises(ValidationError, match="1001 events exceed the limit of 1000"):
        check_batch_size(MAX_BATCH_EVENTS + 1)


def test_every_payload_has_a_reader():
    payloads = {f.name for f in pb.Event.DESCRIPTOR.oneofs_by_name["payload"].fields}
    assert set(_PAYLOAD_READERS) == payloads


@settings(max_examples=300)
@given(events())
def test_read_event_returns_the_fields_it_read(event):
    fields = read_event(event, NOW)
    assert isinstance(fields, EventFields) and len(fields) == 12
    payload, eid, school, classroom, device, lesson, seconds, nanos, p0, p1, p2, p3 = fields
    assert payload == fields.payload == event.WhichOneof("payload")
    envelope = (event.event_id, event.school_id, event.classroom_id, event.device_id, event.lesson_id)
    assert (eid, school, classroom, device, lesson) == envelope
    assert (seconds, nanos) == (event.occurred_at.seconds, event.occurred_at.nanos)
    expected = {
        "trace": lambda: (event.trace, event.trace.student_id, event.trace.verb, event.trace.item_id),
        "observation": lambda: (
            event.observation.present,
            event.observation.attentive,
            {c.behavior: c.count for c in event.observation.counts},
            None,
        ),
        "teaching": lambda: (event.teaching.kind, event.teaching.duration_ms, None, None),
        "lesson": lambda: (event.lesson, event.lesson.phase, None, None),
        "heartbeat": lambda: (event.heartbeat, None, None, None),
    }[payload]()
    assert (p0, p1, p2, p3) == expected


@settings(max_examples=500)
@given(invalid_events())
def test_a_broken_rule_is_named_by_its_field(case):
    event, field = case
    with pytest.raises(ValidationError) as info:
        read_event(event, NOW)
    assert info.value.field == field
