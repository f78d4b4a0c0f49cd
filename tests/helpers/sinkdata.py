"""Deterministic, fast synthetic records for the sink's tests and ``bench/sink.py``.

Hypothesis strategies (``tests/strategies.py``) explore the event space; these builders make many
valid events quickly and reproducibly (a seeded RNG), spread over every payload kind, so counts
can be checked exactly.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator

from classtrace.codec import ms_to_ts
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb

KINDS = ("lesson", "teaching", "observation", "trace", "heartbeat")
_DEVICE = {
    "lesson": pb.DEVICE_KIND_TEACHER_APP,
    "teaching": pb.DEVICE_KIND_CAMERA,
    "observation": pb.DEVICE_KIND_CAMERA,
    "trace": pb.DEVICE_KIND_TABLET,
    "heartbeat": pb.DEVICE_KIND_WHITEBOARD,
}


def make_event(rng: random.Random, now_ms: int, school: str, classroom: str, kind: str, seq: int) -> pb.Event:
    """One valid event of ``kind`` that occurred within the last minute of ``now_ms``."""
    e = pb.Event(
        event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        school_id=school,
        classroom_id=classroom,
        device_id=f"{classroom}-{kind}",
        lesson_id=f"{classroom}-L1",
        seq=seq,
        device_kind=_DEVICE[kind],
    )
    ms_to_ts(now_ms - rng.randrange(60_000), e.occurred_at)
    if kind == "lesson":
        e.lesson.phase = pb.LessonLifecycle.PHASE_STARTED
        e.lesson.teacher_id = f"t-{classroom}"
        e.lesson.subject = "math"
        e.lesson.grade = "G7"
        e.lesson.enrolled = 40
    elif kind == "teaching":
        e.teaching.kind = pb.TeachingBehavior.KIND_LECTURING
        e.teaching.teacher_id = f"t-{classroom}"
        e.teaching.duration_ms = 30_000
        e.teaching.confidence = 0.9
    elif kind == "observation":
        e.observation.present = 40
        e.observation.attentive = rng.randrange(41)
        c = e.observation.counts.add()
        c.behavior = pb.ClassObservation.BEHAVIOR_HAND_RAISING
        c.count = rng.randrange(10)
    elif kind == "trace":
        t = e.trace
        t.student_id = "ps_" + f"{rng.getrandbits(128):032x}"
        t.verb = pb.LearningTrace.VERB_ANSWERED
        t.item_id = f"q{rng.randrange(20)}"
        t.knowledge_points.extend(["kp.fractions"])
        t.correct = rng.random() < 0.7
        t.score = 1.0
        t.latency_ms = rng.randrange(60_000)
        t.context = pb.LearningTrace.CONTEXT_IN_CLASS
    else:
        h = e.heartbeat
        h.battery_pct = 80.0
        h.cpu_pct = 12.5
        h.spool_depth = 0
        h.firmware = "1.2.3"
        h.interval_s = 30
    return e


def event_batches(
    n_events: int,
    per_batch: int = 100,
    classrooms: int = 8,
    schools: int = 2,
    seed: int = 7,
    now_ms: int | None = None,
) -> Iterator[tuple[str, pb.EventBatch]]:
    """``(classroom_id, EventBatch)`` records holding ``n_events`` distinct valid events in all."""
    rng = random.Random(seed)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    made = 0
    while made < n_events:
        c = rng.randrange(classrooms)
        school, classroom = f"s{c % schools}", f"s{c % schools}-c{c}"
        n = min(per_batch, n_events - made)
        batch = pb.EventBatch()
        batch.events.extend(
            make_event(rng, now, school, classroom, KINDS[(made + i) % len(KINDS)], made + i)
            for i in range(n)
        )
        made += n
        yield classroom, batch


def lesson_summary(
    lesson_id: str, school: str = "s0", classroom: str = "s0-c0", version: int = 1
) -> ppb.LessonSummary:
    """A final lesson summary with plausible metrics."""
    now_ms = int(time.time() * 1000)
    s = ppb.LessonSummary(
        lesson_id=lesson_id,
        school_id=school,
        classroom_id=classroom,
        teacher_id="t-1",
        subject="math",
        grade="G7",
        st_samples=90,
        st_rt=0.62,
        st_ch=0.41,
        st_codes="TTS" * 30,
        teaching_mode="dialogue",
        attention_rate=0.83,
        participation_rate=0.9,
        answers=120,
        answer_accuracy=0.75,
        hand_raises=14,
        final=True,
        enrolled=40,
        version=version,
    )
    ms_to_ts(now_ms - 45 * 60_000, s.started_at)
    ms_to_ts(now_ms, s.ended_at)
    ms_to_ts(now_ms, s.computed_at)
    return s
