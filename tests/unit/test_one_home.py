"""One home per formula: what the worker emits equals the metric functions applied to the lesson.

Hypothesis generates whole lessons (segments, camera frames, traces, heartbeats), re-delivers a
part of them and shuffles them into records. The processor's final summary and its window
points must equal the pure functions of :mod:`stream_processors.metrics` applied once to the
lesson's distinct events (docs/DESIGN.md §7): no second implementation to hold the worker to, so a
formula changed in its module changes both sides, and any drift in how the worker feeds it
(a payload routed wrongly, a duplicate counted, an event lost) fails here.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classtrace.v1 import events_pb2 as pb
from stream_processors.metrics.accuracy import first_attempt_accuracy
from stream_processors.metrics.attention import attention_rate
from stream_processors.metrics.participation import hand_raises, participation_rate
from stream_processors.metrics.st_analysis import lesson_st
from stream_processors.metrics.windows import WINDOW_MS, hand_raising, window_start
from stream_processors.processor import Processor, ProcessorConfig, Record
from tests.helpers.worker_tables import DictTable, Sink

LT, CO = pb.LearningTrace, pb.ClassObservation
# An hour ago, on the minute: inside the 7 days events may be old (older windows are swept).
START_MS = (int(time.time()) // 60 - 60) * 60_000
ROOM, LESSON = "room-7", "lesson-7"
STUDENTS = ["ps_" + f"{i:032x}" for i in range(8)]


@dataclass
class Lesson:
    """A generated lesson: its events in occurred order, and its end."""

    end_ms: int
    enrolled: int
    events: list[pb.Event] = field(default_factory=list)


def _event(draw_id: int, device: str, ms: int, in_lesson: bool = True) -> pb.Event:
    event = pb.Event(
        event_id=str(uuid.UUID(int=draw_id, version=4)),
        school_id="sch-1",
        classroom_id=ROOM,
        device_id=device,
        lesson_id=LESSON if in_lesson else "",
    )
    event.occurred_at.seconds, millis = divmod(ms, 1000)
    event.occurred_at.nanos = millis * 1_000_000
    return event


@st.composite
def lessons(draw: st.DrawFn) -> Lesson:
    length = draw(st.integers(1_000, 20 * 60_000))
    lesson = Lesson(end_ms=START_MS + length, enrolled=draw(st.integers(0, 60)))
    offsets = st.integers(0, length - 1)
    ids = iter(range(1, 10**9))

    def add(device: str, ms: int, in_lesson: bool = True) -> pb.Event:
        event = _event(next(ids), device, ms, in_lesson)
        lesson.events.append(event)
        return event

    add("app", START_MS).lesson.CopyFrom(
        pb.LessonLifecycle(phase=1, teacher_id="t-1", subject="math", grade="G7", enrolled=lesson.enrolled)
    )
    for kind, at, duration in draw(st.lists(st.tuples(st.integers(1, 9), offsets, st.integers(0, 300_000)))):
        add("cam", START_MS + at).teaching.CopyFrom(pb.TeachingBehavior(kind=kind, duration_ms=duration))
    frame = st.tuples(offsets, st.integers(0, 60), st.integers(0, 60), st.integers(0, 20))
    for at, present, attentive, hands in draw(st.lists(frame, max_size=40)):
        add("cam", START_MS + at).observation.CopyFrom(
            CO(
                present=present,
                attentive=min(attentive, present),
                counts=[
                    CO.BehaviorCount(behavior=CO.BEHAVIOR_READING, count=present),
                    *([CO.BehaviorCount(behavior=CO.BEHAVIOR_HAND_RAISING, count=hands)] if hands else []),
                ],
            )
        )
    verbs = st.sampled_from([LT.VERB_ANSWERED, LT.VERB_ANSWERED, LT.VERB_HAND_RAISED, LT.VERB_VIEWED])
    trace = st.tuples(offsets, st.sampled_from(STUDENTS), verbs, st.integers(1, 4), st.booleans())
    for at, student, verb, item, correct in draw(st.lists(trace, max_size=60)):
        event = add(f"tab-{item % 2}", START_MS + at)
        event.trace.CopyFrom(LT(student_id=student, verb=verb, item_id=f"q-{item}"))
        if verb == LT.VERB_ANSWERED:
            event.trace.correct = correct
    for at in draw(st.lists(offsets, max_size=5)):
        add("tab-0", START_MS + at, in_lesson=False).heartbeat.CopyFrom(pb.DeviceHeartbeat(interval_s=30))
    add("app", lesson.end_ms).lesson.CopyFrom(pb.LessonLifecycle(phase=2))
    lesson.events.sort(key=lambda e: (e.occurred_at.seconds, e.occurred_at.nanos))
    seqs: dict[str, int] = defaultdict(int)
    for event in lesson.events:
        seqs[event.device_id] += 1
        event.seq = seqs[event.device_id]
    return lesson


def _ms(event: pb.Event) -> int:
    return event.occurred_at.seconds * 1000 + event.occurred_at.nanos // 1_000_000


def _of(events: list[pb.Event], payload: str) -> list[pb.Event]:
    return [e for e in events if e.WhichOneof("payload") == payload]


def run_worker(events: list[pb.Event], seed: int) -> Sink:
    """The events, a third of them twice, shuffled into records of 1–40 events, in 3 batches."""
    rng = random.Random(seed)
    delivered = events + rng.sample(events, len(events) // 3)
    rng.shuffle(delivered)
    records, i = [], 0
    while i < len(delivered):
        size = rng.randint(1, 40)
        value = pb.EventBatch(events=delivered[i : i + size]).SerializeToString()
        records.append(Record("classtrace.events.v1", 0, len(records), ROOM.encode(), value))
        i += size
    sink = Sink()
    proc = Processor(DictTable(), DictTable(), DictTable(), sink, ProcessorConfig(summary_interval_s=0.0))
    third = max(1, len(records) // 3)
    for k in range(0, len(records), third):
        proc.process_records(records[k : k + third])
    assert proc.stats.dead_letters == 0
    return sink


def same(got: float, want: float | None) -> bool:
    """Equal to the last bit; a metric without a value is NaN in the summary."""
    return math.isnan(got) if want is None else got == want


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lesson=lessons(), seed=st.integers(0, 2**32))
def test_lesson_summary_is_the_metric_functions_of_its_events(lesson: Lesson, seed: int) -> None:
    events = lesson.events
    summary = run_worker(events, seed).final_summary()

    st_want = lesson_st(
        START_MS,
        lesson.end_ms,
        [(e.teaching.kind, _ms(e), e.teaching.duration_ms) for e in _of(events, "teaching")],
    )
    assert (summary.st_codes, summary.st_samples) == (st_want.codes, st_want.samples)
    assert (summary.st_rt, summary.st_ch) == (st_want.st_rt, st_want.st_ch)
    assert summary.teaching_mode == st_want.mode

    frames = _of(events, "observation")
    pairs = [(e.observation.attentive, e.observation.present) for e in frames]
    assert same(summary.attention_rate, attention_rate(pairs))

    traces = _of(events, "trace")
    students = {e.trace.student_id for e in traces}
    want_part = participation_rate(len(students), lesson.enrolled) if lesson.enrolled else None
    assert same(summary.participation_rate, want_part)

    answered = [
        (e.trace.student_id, e.trace.item_id, e.occurred_at.ToNanoseconds(), e.event_id, e.trace.correct)
        for e in traces
        if e.trace.verb == LT.VERB_ANSWERED
    ]
    accuracy = first_attempt_accuracy(answered)
    assert summary.answers == accuracy.answers
    assert same(summary.answer_accuracy, accuracy.accuracy if accuracy.answers else None)
    assert summary.hand_raises == hand_raises(e.trace.verb for e in traces)
    assert (summary.teacher_id, summary.enrolled, summary.final) == ("t-1", lesson.enrolled, True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lesson=lessons(), seed=st.integers(0, 2**32))
def test_window_points_are_the_metric_functions_of_their_events(lesson: Lesson, seed: int) -> None:
    points = run_worker(lesson.events, seed).points()
    by_window: dict[int, list[pb.Event]] = defaultdict(list)
    for event in lesson.events:
        by_window[window_start(_ms(event))].append(event)
    want: dict[tuple[int, str], float] = {}
    for start, events in by_window.items():
        at = start // 1000
        want[(at, "events")] = float(len(events))
        frames = [e.observation for e in _of(events, "observation")]
        rate = attention_rate((f.attentive, f.present) for f in frames)
        if rate is not None:
            want[(at, "attention_rate")] = rate
        hands = sum(c.count for f in frames for c in f.counts if c.behavior == CO.BEHAVIOR_HAND_RAISING)
        mean = hand_raising(hands, len(frames))
        if mean is not None:
            want[(at, "hand_raising")] = mean
    assert points == want
    assert all(start % WINDOW_MS == 0 for start in by_window)
