"""The C wire scanner against read_event: it accepts bytes only when upb + read_event would.

classtrace.wire is the first judge on every hot path and classtrace.validation the only source
of verdicts and reasons. These tests hold the two to each other over valid batches, batches with
one broken rule, every documented good and bad case, hand-made wire oddities and randomly
mutated bytes; and they check that what the gateway publishes from the scanner is the request
with received_at replaced, nothing else.
"""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classtrace import validation, wire
from classtrace.codec import varint
from classtrace.errors import ValidationError
from classtrace.v1 import events_pb2 as pb
from classtrace.validation import read_event
from tests.helpers.event_cases import BAD, GOOD, make
from tests.helpers.strategies import NOW, events, invalid_events
from tests.unit.test_validation_batch import AT_THE_LIMITS


def _valid(event: pb.Event) -> bool:
    try:
        read_event(event, NOW)
    except ValidationError:
        return False
    return True


def _bytes(batch: list[pb.Event]) -> bytes:
    return pb.EventBatch(events=batch).SerializeToString()


def _upb_accepts(data: bytes) -> int:
    """What the Python path makes of ``data``: its number of events if all pass, else -1."""
    try:
        batch = pb.EventBatch.FromString(data)
    except DecodeError:
        return -1
    return len(batch.events) if all(_valid(e) for e in batch.events) else -1


def test_the_extension_is_built():
    assert wire.COMPILED, "classtrace._wire is missing: pip install -e . compiles it (setup.py)"


def test_its_limits_are_the_validation_module_s():
    from classtrace import _wire

    assert _wire.MAX_TEXT == validation.MAX_TEXT
    assert _wire.MAX_PRESENT == validation.MAX_PRESENT
    assert _wire.MAX_DURATION_MS == validation.MAX_DURATION_MS
    assert _wire.MAX_HEARTBEAT_INTERVAL_S == validation.MAX_HEARTBEAT_INTERVAL_S
    assert validation.MAX_FUTURE.total_seconds() == _wire.MAX_FUTURE_S
    assert validation.MAX_AGE.total_seconds() == _wire.MAX_AGE_S


@settings(max_examples=200)
@given(st.lists(events(), max_size=30))
def test_valid_batches_are_accepted(batch):
    assert wire.count_valid(_bytes(batch), NOW) == len(batch)


@settings(max_examples=300)
@given(st.lists(events(), max_size=8), invalid_events(), st.data())
def test_a_batch_with_a_broken_rule_is_never_accepted(good, bad, data):
    event, _field = bad
    batch = list(good)
    batch.insert(data.draw(st.integers(0, len(batch))), event)
    assert not _valid(event)
    assert wire.count_valid(_bytes(batch), NOW) == -1


@pytest.mark.parametrize(
    ("kind", "mutate", "field", "reason"), BAD, ids=[f"{f}:{r[:40]}" for _, _, f, r in BAD]
)
def test_every_documented_bad_case_is_refused(kind, mutate, field, reason):
    event = make(kind)
    mutate(event)
    assert wire.count_valid(_bytes([make("trace"), event, make("observation")]), NOW) == -1


@pytest.mark.parametrize(("kind", "mutate"), [(k, m) for k, m, _ in GOOD], ids=[i for *_, i in GOOD])
def test_every_documented_good_case_is_accepted(kind, mutate):
    event = make(kind)
    mutate(event)
    # the scanner does read_event's own float arithmetic, so even the limits are decided here
    assert wire.count_valid(_bytes([make("teaching"), event, make("heartbeat")]), NOW) == 3
    assert mutate.__code__ in AT_THE_LIMITS or validation.read_batch([event], NOW) is not None


def test_empty_and_broken_framing():
    assert wire.count_valid(b"", NOW) == 0
    good = _bytes([make("trace")])
    assert wire.count_valid(good, NOW) == 1
    assert wire.count_valid(good[:-1], NOW) == -1  # truncated
    assert wire.count_valid(good + b"\x12\x00", NOW) == -1  # an unknown EventBatch field
    assert wire.count_valid(b"\x0a\xff\xff\xff\xff\x0f", NOW) == -1  # length past the end


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    return varint(number << 3 | wire_type) + payload


def _len_field(number: int, payload: bytes) -> bytes:
    return _field(number, 2, varint(len(payload)) + payload)


def _one(event_bytes: bytes) -> bytes:
    return _len_field(1, event_bytes)


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("unknown field", _field(99, 0, b"\x01")),
        ("envelope field twice", _len_field(2, b"sch-1")),
        ("a second payload", _len_field(14, _field(5, 0, b"\x3c"))),
        ("seq as the wrong wire type", _len_field(8, b"\x01")),
        ("received_at with bad nanos", _len_field(7, _field(2, 0, varint(2**32 - 1)))),
    ],
)
def test_wire_oddities_are_left_to_upb(name, extra):
    event = make("trace").SerializeToString()
    assert wire.count_valid(_one(event), NOW) == 1
    assert wire.count_valid(_one(event + extra), NOW) == -1


@pytest.mark.parametrize(
    ("name", "trace_extra"),
    [
        ("bool correct = 2", _field(5, 0, b"\x02")),
        ("latency wider than 32 bits", _field(7, 0, varint(2**32))),
        ("knowledge point of invalid UTF-8", _len_field(4, b"\xff\xfe")),
        ("knowledge point of a surrogate", _len_field(4, "\ud800".encode("utf-8", "surrogatepass"))),
    ],
)
def test_payload_oddities_are_left_to_upb(name, trace_extra):
    event = make("trace")
    trace = event.trace.SerializeToString() + trace_extra
    event.ClearField("trace")
    raw = event.SerializeToString() + _len_field(13, trace)
    assert wire.count_valid(_one(raw), NOW) == -1


def test_text_limits_count_characters_not_bytes():
    lesson = make("lesson")
    lesson.lesson.subject = "数" * 64  # 192 bytes, 64 characters: allowed
    assert wire.count_valid(_bytes([lesson]), NOW) == 1
    lesson.lesson.subject = "数" * 65
    assert wire.count_valid(_bytes([lesson]), NOW) == -1
    trace = make("trace")
    trace.trace.knowledge_points.extend(["一元一次方程", "函数"])
    assert wire.count_valid(_bytes([trace]), NOW) == 1


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events(), min_size=1, max_size=4), st.data())
def test_mutated_bytes_are_accepted_only_when_upb_and_read_event_accept_them(batch, data):
    raw = bytearray(_bytes(batch))
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        at = data.draw(st.integers(0, len(raw) - 1)) if raw else 0
        if action == "flip" and raw:
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "set" and raw:
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=3))
        elif raw:
            del raw[at]
    mutated = bytes(raw)
    n = wire.count_valid(mutated, NOW)
    if n >= 0:
        assert _upb_accepts(mutated) == n
        # and upb's own encoding of what it read is accepted too (the sink's input after a decode)
        assert wire.count_valid(pb.EventBatch.FromString(mutated).SerializeToString(), NOW) == n


# --- the gateway's stamp -------------------------------------------------------------------------

STAMP_NS = int(NOW * 1e9) + 123_456_789


def _bound(batch: list[pb.Event]) -> list[pb.Event]:
    for e in batch:
        e.school_id, e.classroom_id, e.device_id = "sch-1", "room-1", "dev-1"
    return batch


@settings(max_examples=150)
@given(st.lists(events(), min_size=1, max_size=20))
def test_accept_bound_stamps_received_at_and_changes_nothing_else(batch):
    batch = _bound(batch)
    got = wire.accept_bound(_bytes(batch), NOW, "sch-1", "room-1", "dev-1", STAMP_NS)
    assert got is not None
    n, stamped = got
    assert n == len(batch)
    out = pb.EventBatch.FromString(stamped).events
    for before, after in zip(batch, out, strict=True):
        assert (after.received_at.seconds, after.received_at.nanos) == divmod(STAMP_NS, 10**9)
        before.received_at.seconds, before.received_at.nanos = divmod(STAMP_NS, 10**9)
        assert after == before
    assert wire.count_valid(stamped, NOW) == n  # and the sink's scanner accepts it as it is


def test_accept_bound_writes_zero_nanos_explicitly():
    event = _bound([make("trace")])[0]
    event.received_at.seconds, event.received_at.nanos = 5, 7
    got = wire.accept_bound(_bytes([event]), NOW, "sch-1", "room-1", "dev-1", 1_800_000_000 * 10**9)
    assert got is not None
    stamped = pb.EventBatch.FromString(got[1]).events[0].received_at
    assert (stamped.seconds, stamped.nanos) == (1_800_000_000, 0)


@pytest.mark.parametrize("field", ["school_id", "classroom_id", "device_id"])
def test_accept_bound_refuses_another_tenant_s_event(field):
    batch = _bound([make("trace"), make("observation")])
    setattr(batch[1], field, "other-1")
    assert wire.accept_bound(_bytes(batch), NOW, "sch-1", "room-1", "dev-1", STAMP_NS) is None


def test_accept_bound_of_an_empty_batch():
    assert wire.accept_bound(b"", NOW, "sch-1", "room-1", "dev-1", STAMP_NS) == (0, b"")


# --- the worker's rows ---------------------------------------------------------------------------


def _python_row(event: pb.Event) -> tuple[object, ...]:
    """The row read_event gives for ``event``, in scan_events' shape (see classtrace.wire)."""
    payload, eid, school, room, device, lesson, seconds, nanos, p0, p1, p2, p3 = read_event(event, NOW)
    if payload == "trace":
        p0 = p0.correct
    elif payload in ("lesson", "heartbeat"):
        p0, p1 = event, None
    return (payload, eid, school, room, device, lesson, seconds, nanos, event.seq, p0, p1, p2, p3)


@settings(max_examples=200)
@given(st.lists(events(), max_size=20))
def test_scan_events_reads_what_read_event_reads(batch):
    rows = wire.scan_events(_bytes(batch), NOW)
    assert rows is not None
    expected = [_python_row(e) for e in batch]
    for row, want in zip(rows, expected, strict=True):
        if row[0] in ("lesson", "heartbeat"):  # the event's own bytes, for upb to decode
            assert pb.Event.FromString(row[9]) == want[9]
            assert row[:9] + row[10:] == want[:9] + want[10:]
        else:
            assert row == want


def test_scan_events_refuses_what_count_valid_refuses():
    bad = make("trace")
    bad.trace.student_id = "张三"
    assert wire.scan_events(_bytes([make("observation"), bad]), NOW) is None
    assert wire.scan_events(b"", NOW) == []


def test_scan_events_with_the_record_key_refuses_another_classroom_s_event():
    events = [make("trace"), make("observation")]
    room = events[0].classroom_id
    assert wire.scan_events(_bytes(events), NOW, room) is not None
    events[1].classroom_id = "room-other"
    assert wire.scan_events(_bytes(events), NOW, room) is None  # the worker then dead-letters it
    assert wire.scan_events(_bytes(events), NOW) is not None  # no key given: not checked
