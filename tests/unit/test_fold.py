"""The worker's C code (stream_processors._fold) against its Python reference, state for state.

Two processors take the same records, one counting with the C loop and one with
``Processor._apply_events``; every table value they write (lesson, window, device book — dedup
bits included), every metric record and every counter must be identical. The records mix what
the loop has to get right: duplicates and replays, seq 0 and seqs far apart or below a bitmap's
base, all payload kinds, lessons starting and ending, heartbeats with and without received_at,
windows past retention, and records the scanner refuses (an invalid or foreign event). The
window values and points the flush writes in C are held to the Python bytes on their own too.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from stream_processors import _fold
from stream_processors.dedup import MAX_SPAN, SeenEvents
from stream_processors.metrics import attention
from stream_processors.metrics.st_analysis import T_KINDS
from stream_processors.metrics.windows import WINDOW_MS
from stream_processors.processor import Processor, ProcessorConfig, Record
from stream_processors.window_state import WindowState
from tests.helpers.worker_tables import DictTable, Sink

NOW = 1_800_000_000.0
LT, CO = pb.LearningTrace, pb.ClassObservation
ROOMS = ("room-a", "room-b")
IDS = [str(uuid.UUID(int=n + 1, version=4)) for n in range(6)]  # a small pool: seq-0 duplicates
SEQS = st.one_of(
    st.integers(1, 40),  # a device's usual narrow range
    st.integers(1, 3 * MAX_SPAN),  # beyond a bitmap's span, both ways
    st.integers(2**64 - 3 * MAX_SPAN, 2**64 - 1),  # uint64's end: no overflow in C or JSON
    st.just(0),  # no seq: the event_id decides
)


def test_constants_match_the_python_side():
    assert _fold.MAX_SPAN == MAX_SPAN
    assert _fold.WINDOW_MS == WINDOW_MS
    assert _fold.HIST_SHIFT == attention._SHIFT
    assert _fold.BEHAVIOR_HAND_RAISING == CO.BEHAVIOR_HAND_RAISING
    assert _fold.VERB_HAND_RAISED == LT.VERB_HAND_RAISED
    assert _fold.VERB_ANSWERED == LT.VERB_ANSWERED
    assert sum(1 << kind for kind in T_KINDS) == _fold.T_KIND_MASK


@st.composite
def events(draw: Any, room: str) -> pb.Event:
    lesson = draw(st.sampled_from(["", "l1", "l2"]))
    # whole seconds apart, sometimes: segments that touch, heartbeats at the same instant
    ms = int(NOW * 1000) - draw(
        st.one_of(
            st.integers(0, 120_000), st.integers(0, 3_600_000), st.integers(0, 30).map(lambda k: k * 1000)
        )
    )
    ev = pb.Event(
        event_id=draw(st.one_of(st.sampled_from(IDS), st.uuids(version=4).map(str))),
        school_id=draw(st.sampled_from(["sch-1", "sch-2"])),
        classroom_id=room,
        device_id=f"{room}-{draw(st.sampled_from(['cam', 'tab', 'app']))}",
        device_kind=draw(st.integers(1, 6)),
        lesson_id=lesson,
        seq=draw(SEQS),
    )
    ev.occurred_at.seconds, ev.occurred_at.nanos = (
        ms // 1000,
        (ms % 1000) * 1_000_000 + draw(st.sampled_from([0, 999_999]) | st.integers(0, 999_999)),
    )
    kinds = ["observation", "trace", "teaching", "heartbeat"] + (["lesson"] if lesson else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "observation":
        present = draw(st.integers(0, 40))
        ev.observation.present, ev.observation.attentive = present, draw(st.integers(0, present))
        for behavior in draw(st.sets(st.integers(1, 8), max_size=3)):
            ev.observation.counts.add(behavior=behavior, count=draw(st.integers(0, present)))
    elif kind == "trace":
        verb = draw(st.integers(1, 7))
        ev.trace.student_id = "ps_" + draw(st.sampled_from(["0" * 32, "a" * 32, "0123456789abcdef" * 2]))
        ev.trace.verb = verb
        if verb == LT.VERB_ANSWERED or draw(st.booleans()):
            ev.trace.item_id = draw(st.sampled_from(["q1", "q2"]))
        correct = draw(st.sampled_from([None, True, False]))
        if correct is not None:
            ev.trace.correct = correct
    elif kind == "teaching":
        ev.teaching.kind = draw(st.integers(1, 9))
        ev.teaching.duration_ms = draw(
            st.one_of(st.integers(1, 90_000), st.integers(1, 5).map(lambda k: k * 1000))
        )
    elif kind == "heartbeat":
        ev.heartbeat.interval_s = draw(st.integers(1, 60))
        ev.heartbeat.battery_pct = draw(st.floats(0, 100, width=32))
        ev.heartbeat.spool_depth = draw(st.integers(0, 2**40))
        if draw(st.booleans()):
            ev.received_at.seconds = int(NOW) - draw(st.integers(0, 100))
            ev.received_at.nanos = draw(st.integers(0, 999_999_999))
    else:
        phase = draw(st.sampled_from([1, 2]))
        ev.lesson.phase = phase
        if phase == 1 or draw(st.booleans()):
            ev.lesson.teacher_id = draw(st.sampled_from(["t-1", "t-2"]))
        ev.lesson.subject = draw(st.sampled_from(["", "math", "数学"]))
        ev.lesson.grade = draw(st.sampled_from(["", "7"]))
        ev.lesson.enrolled = draw(st.integers(0, 45))
    return ev


@st.composite
def records(draw: Any) -> list[Record]:
    out: list[Record] = []
    for offset in range(draw(st.integers(1, 12))):
        room = draw(st.sampled_from(ROOMS))
        batch = pb.EventBatch(events=draw(st.lists(events(room), min_size=0, max_size=12)))
        flaw = draw(st.sampled_from([None, None, None, None, "foreign", "invalid"]))
        if flaw and batch.events:
            bad = batch.events[draw(st.integers(0, len(batch.events) - 1))]
            if flaw == "foreign":
                bad.classroom_id = "elsewhere"
            else:
                bad.school_id = "not valid!"
        value = batch.SerializeToString()
        out.append(Record("classtrace.events.v1", ROOMS.index(room), offset, room.encode(), value))
        if draw(st.booleans()):  # redelivered, as after a crash
            out.append(out[draw(st.integers(0, len(out) - 1))])
    return out


def processor(native: bool) -> tuple[Processor, tuple[DictTable, DictTable, DictTable], Sink]:
    tables, sink = (DictTable(), DictTable(), DictTable()), Sink()
    config = ProcessorConfig(summary_interval_s=0.0, window_retention_s=1800.0, native=native)
    return Processor(*tables, sink, config, clock=lambda: NOW), tables, sink


def outcome(native: bool, batches: list[list[Record]]) -> tuple[Any, ...]:
    proc, tables, sink = processor(native)
    for batch in batches:
        proc.process_records(batch)
    proc.tick()
    stats = proc.stats
    return (
        [t.data for t in tables],
        [b.SerializeToString(deterministic=True) for b in sink.batches],
        [d.SerializeToString(deterministic=True) for d in sink.dead],
        (stats.events, stats.duplicates, stats.late_dropped),
        (stats.dead_letters, stats.errors, stats.summaries),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=4))
def test_the_c_loop_writes_what_the_python_loop_writes(batches):
    native = outcome(True, batches)
    assert native == outcome(False, batches)
    assert native[4][1] == 0  # no worker errors on either side


def test_the_c_loop_is_the_one_used_for_valid_records(monkeypatch):
    calls: list[Any] = []
    proc, _tables, sink = processor(True)
    original = proc._fold
    assert original is not None, "stream_processors._fold is not built"

    def spy(*args: Any) -> Any:
        calls.append(result := original(*args))
        return result

    proc._fold = spy
    batch = pb.EventBatch()
    ev = batch.events.add(event_id=IDS[0], school_id="sch-1", classroom_id="room-a", device_id="cam",
                          device_kind=1, lesson_id="l1", seq=1)  # fmt: skip
    ev.occurred_at.seconds = int(NOW) - 5
    ev.observation.present, ev.observation.attentive = 30, 20
    proc.process_records([Record("t", 0, 0, b"room-a", batch.SerializeToString())])
    assert calls == [(1, 0, 0, (int(NOW) - 5) * 1000)]
    assert [p.metric for b in sink.batches for p in b.points] == ["events", "attention_rate", "hand_raising"]


def test_a_hook_that_raises_leaves_counts_and_dedup_bits_agreeing():
    """A failure mid-record: what was counted before it is written back with its dedup bits."""
    proc, _tables, _sink = processor(True)
    batch = pb.EventBatch()
    for seq in (1, 2):
        ev = batch.events.add(event_id=IDS[seq], school_id="sch-1", classroom_id="room-a", device_id="cam",
                              device_kind=1, seq=seq)  # fmt: skip
        ev.occurred_at.seconds = int(NOW) - 5
        if seq == 1:
            ev.observation.present = 10
        else:
            ev.heartbeat.interval_s = 30

    def broken(*_args: Any) -> bool:
        raise RuntimeError("book unavailable")

    proc._book_parts = broken  # type: ignore[method-assign,assignment]
    proc.process_records([Record("t", 0, 0, b"room-a", batch.SerializeToString())])
    assert proc.stats.errors == 1 and proc.stats.dead_letters == 1
    (window,) = proc._windows.values()
    assert window.events == 2 and window.observations == 1  # both counted before the hook raised
    assert not window.seen.add("cam", 1, "") and not window.seen.add("cam", 2, "")


def test_old_dedup_values_with_an_unaligned_base_are_read():
    """Values written before bitmaps were byte-aligned: bit 0 was the smallest seq itself."""
    old = {"d": {"cam": [13, 20, format(0b10000101, "x")]}, "o": []}  # seqs 13, 15, 20
    seen = SeenEvents.from_obj(old)
    assert [seq for seq in range(8, 25) if not seen.add("cam", seq, "")] == [13, 15, 20]


@pytest.mark.parametrize("seqs", [[5, 3, 900, 2, 70_000, 1], [65_540, 1, 65_541, 3]])
def test_bitmaps_grow_both_ways_as_in_python(seqs):
    c_proc, _t, _s = processor(True)
    py_proc, _t2, _s2 = processor(False)
    batch = pb.EventBatch()
    for n, seq in enumerate(seqs):
        ev = batch.events.add(event_id=IDS[n % 6], school_id="sch-1", classroom_id="room-a", device_id="cam",
                              device_kind=1, lesson_id="l1", seq=seq)  # fmt: skip
        ev.occurred_at.seconds = int(NOW) - 5
        ev.observation.present = 10
    record = Record("t", 0, 0, b"room-a", batch.SerializeToString() * 2)  # every event twice
    for proc in (c_proc, py_proc):
        proc.process_records([record])
    assert c_proc.stats.duplicates == len(seqs) == py_proc.stats.duplicates
    assert c_proc._lessons["room-a/l1"].to_bytes() == py_proc._lessons["room-a/l1"].to_bytes()


def test_a_heartbeat_counted_in_c_reaches_the_device_status():
    proc, _tables, sink = processor(True)
    batch = pb.EventBatch()
    ev = batch.events.add(event_id=IDS[0], school_id="sch-1", classroom_id="room-a", device_id="cam",
                          device_kind=1, seq=1)  # fmt: skip
    ev.occurred_at.seconds = int(NOW) - 5
    ev.heartbeat.interval_s = 30
    proc.process_records([Record("t", 0, 0, b"room-a", batch.SerializeToString())])
    (status,) = [d for b in sink.batches for d in b.devices]
    assert isinstance(status, ppb.DeviceStatus) and status.device_id == "cam" and not status.offline


def test_a_record_longer_than_the_readers_first_buffer_counts_as_in_python():
    """_fold reads a record's events into a buffer of 128 first and grows it: 300 events here."""
    batch = pb.EventBatch()
    for seq in range(1, 301):
        ev = batch.events.add(event_id=str(uuid.UUID(int=seq, version=4)), school_id="sch-1",
                              classroom_id="room-a", device_id="cam", device_kind=1, lesson_id="l1",
                              seq=seq)  # fmt: skip
        ev.occurred_at.seconds = int(NOW) - 300 + seq
        ev.observation.present, ev.observation.attentive = 40, seq % 41
    record = [Record("t", 0, 0, b"room-a", batch.SerializeToString())]
    native = outcome(True, [record])
    assert native == outcome(False, [record])
    assert native[3][0] == 300  # all counted, none a duplicate


def _teaching_record(segments: list[tuple[int, int, int]]) -> Record:
    """One camera's TeachingBehavior events: (kind, start offset ms, duration ms) each."""
    batch = pb.EventBatch()
    for n, (kind, offset_ms, duration_ms) in enumerate(segments, start=1):
        ev = batch.events.add(event_id=str(uuid.UUID(int=n, version=4)), school_id="sch-1",
                              classroom_id="room-a", device_id="cam", device_kind=1, lesson_id="l1",
                              seq=n)  # fmt: skip
        ms = (int(NOW) - 600) * 1000 + offset_ms
        ev.occurred_at.seconds, ev.occurred_at.nanos = ms // 1000, (ms % 1000) * 1_000_000
        ev.teaching.kind, ev.teaching.duration_ms = kind, duration_ms
    return Record("t", 0, 0, b"room-a", batch.SerializeToString())


@pytest.mark.parametrize(
    "segments",
    [
        [(1, 0, 10_000), (2, 10_000, 5_000)],  # touching the end: merged
        [(1, 0, 10_000), (2, 5_000, 5_000)],  # ending exactly at the end: covered
        [(1, 0, 10_000), (2, 5_000, 5_001)],  # one ms past it: extended
        [(1, 0, 10_000), (2, 10_001, 1_000)],  # one ms after it: a new interval
        [(1, 20_000, 10_000), (2, 19_999, 1_000)],  # one ms before the last: the Python merge
        [(1, 20_000, 10_000), (2, 0, 5_000), (3, 4_000, 20_000)],  # spans two: the Python merge
        [(7, 0, 10_000), (8, 10_000, 5_000), (1, 12_000, 1_000)],  # not T kinds: nothing added
    ],
)
def test_t_segments_at_the_end_of_the_union_merge_as_in_python(segments):
    record = [_teaching_record(segments)]
    native = outcome(True, [record])
    assert native == outcome(False, [record])


def test_heartbeats_at_the_same_instant_keep_the_larger_event_id_as_in_python():
    batch = pb.EventBatch()
    beats = [(0, 5), (0, 3), (0, 9), (1, 1), (-1, 99), (0, 200), (1, 1)]  # (offset ms, id)
    for n, (offset_ms, id_n) in enumerate(beats, start=1):
        ev = batch.events.add(event_id=str(uuid.UUID(int=id_n, version=4)), school_id="sch-1",
                              classroom_id="room-a", device_id="tab", device_kind=3, seq=n)  # fmt: skip
        ms = int(NOW * 1000) - 5000 + offset_ms
        ev.occurred_at.seconds, ev.occurred_at.nanos = ms // 1000, (ms % 1000) * 1_000_000
        ev.heartbeat.interval_s, ev.heartbeat.battery_pct = 30, float(n)
    record = [Record("t", 0, 0, b"room-a", batch.SerializeToString())]
    native = outcome(True, [record])
    assert native == outcome(False, [record])
    (book,) = native[0][2].values()
    # the 4th: 1 ms after the others; not the 6th (1 ms before it) nor the 7th (its id again)
    assert orjson.loads(book)["d"]["tab"][4] == 4.0


def test_first_attempts_changed_by_a_later_record_reach_the_value_and_summary():
    """The lesson's first attempts are cached between changes; the C loop's changes clear it."""

    def answers(first_n: int, items: list[tuple[str, int, bool]]) -> Record:
        batch = pb.EventBatch()
        for n, (student, offset_ms, correct) in enumerate(items, start=first_n):
            ev = batch.events.add(event_id=str(uuid.UUID(int=n, version=4)), school_id="sch-1",
                                  classroom_id="room-a", device_id="tab", device_kind=3, lesson_id="l1",
                                  seq=n)  # fmt: skip
            ms = int(NOW * 1000) - 60_000 + offset_ms
            ev.occurred_at.seconds, ev.occurred_at.nanos = ms // 1000, (ms % 1000) * 1_000_000
            ev.trace.student_id, ev.trace.verb, ev.trace.item_id = student, LT.VERB_ANSWERED, "q1"
            ev.trace.correct = correct
        return Record("t", 0, 0, b"room-a", batch.SerializeToString())

    a, b = "ps_" + "a" * 32, "ps_" + "b" * 32
    records = [
        [answers(1, [(a, 500, True)])],
        [answers(2, [(b, 700, True), (a, 100, False)])],  # a new student, an earlier try
    ]
    native = outcome(True, records)
    assert native == outcome(False, records)
    (lesson,) = native[0][0].values()
    assert {k: v[2] for k, v in orjson.loads(lesson)["ans"].items()} == {f"{a}|q1": 0, f"{b}|q1": 1}


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)  # escapes too


@st.composite
def windows(draw: Any) -> WindowState:
    window = WindowState(draw(TEXT), draw(st.integers(0, 2**41)) // WINDOW_MS * WINDOW_MS, draw(TEXT))
    window.events = draw(st.integers(1, 10**6))
    window.observations = draw(st.integers(0, 10**6))
    window.hands = draw(st.integers(0, 10**6))
    for _ in range(draw(st.integers(0, 12))):
        present = draw(st.integers(1, 500))
        for _ in range(draw(st.integers(1, 3))):
            window.attention.add(draw(st.integers(0, present)), present)
    window.lessons = set(draw(st.lists(TEXT, max_size=4)))
    for device in draw(st.lists(TEXT, max_size=4, unique=True)):
        base = draw(st.integers(0, 2**64 - 2**20)) & ~7
        bits = bytearray(draw(st.binary(min_size=1, max_size=20)))
        window.seen.devices[device] = [base, base + 8 * len(bits) - 1, bits]
    window.seen.other = {f"{d}\x00{n}" for d, n in draw(st.lists(st.tuples(TEXT, st.integers(0, 2**64 - 1))))}
    return window


@settings(max_examples=500, deadline=None)
@given(windows())
def test_a_windows_value_and_points_written_in_c_are_the_python_bytes(window):
    """window_outputs: orjson's bytes for WindowState.to_bytes (escapes, uint64 seqs, zero
    bitmaps) and upb's for the points add_points appends (math.fsum's attention_rate, bit for
    bit; a 0.0 value left out as proto3 does)."""
    value, points = _fold.window_outputs(window)
    batch = ppb.MetricBatch()
    window.add_points(batch)
    assert value == window.to_bytes()
    assert points == batch.SerializeToString()
    assert WindowState.from_bytes(value).to_bytes() == value
