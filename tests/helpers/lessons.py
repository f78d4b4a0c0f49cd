"""A recorded lesson for worker tests: realistic, deterministic events of one classroom.

``recorded_lesson(seed)`` returns the events of a 10-minute lesson in occurred_at order — the
teacher app's STARTED/ENDED, a camera's teaching segments and observations, tablets' traces and
every device's heartbeats — with per-device increasing ``seq`` as the EdgeProducer assigns them.
"""

from __future__ import annotations

import random
import time
import uuid

from classtrace.v1 import events_pb2 as pb

DK = pb.DeviceKind
TB = pb.TeachingBehavior
LT = pb.LearningTrace
CO = pb.ClassObservation


def _event(
    rng: random.Random, school: str, classroom: str, device: str, kind: int, ms: int, lesson: str
) -> pb.Event:
    event = pb.Event(
        event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        school_id=school,
        classroom_id=classroom,
        device_id=device,
        lesson_id=lesson,
        device_kind=kind,
    )
    event.occurred_at.seconds, millis = divmod(ms, 1000)
    event.occurred_at.nanos = millis * 1_000_000
    return event


def recorded_lesson(
    seed: int = 1,
    classroom: str = "room-101",
    lesson: str = "lesson-0001",
    start_ms: int | None = None,
    minutes: int = 10,
    school: str = "sch-0001",
) -> list[pb.Event]:
    """The events of one lesson (and its devices' heartbeats), sorted by occurred_at."""
    rng = random.Random(seed)
    start = start_ms if start_ms is not None else (int(time.time()) - 900) * 1000
    end = start + minutes * 60_000
    events: list[pb.Event] = []

    def add(device: str, kind: int, ms: int, in_lesson: bool = True) -> pb.Event:
        event = _event(rng, school, classroom, device, kind, ms, lesson if in_lesson else "")
        events.append(event)
        return event

    started = add("app-1", DK.DEVICE_KIND_TEACHER_APP, start)
    started.lesson.CopyFrom(
        pb.LessonLifecycle(phase=1, teacher_id="t-0042", subject="math", grade="G7", enrolled=40)
    )
    t = start + rng.randint(0, 5_000)
    while t < end:  # camera: teaching segments back to back, some gaps
        duration = rng.randint(15_000, 80_000)
        seg = add("cam-1", DK.DEVICE_KIND_CAMERA, t)
        seg.teaching.CopyFrom(
            TB(kind=rng.choice(list(range(1, 10))), teacher_id="t-0042", duration_ms=duration, confidence=0.9)
        )
        t += duration + rng.choice([0, 0, 5_000, 20_000])
    for ms in range(start, end, 5_000):  # camera: one frame summary every 5 s
        obs = add("cam-1", DK.DEVICE_KIND_CAMERA, ms + rng.randint(0, 999))
        present = rng.randint(36, 40)
        obs.observation.CopyFrom(
            CO(
                present=present,
                attentive=rng.randint(20, present),
                counts=[CO.BehaviorCount(behavior=CO.BEHAVIOR_HAND_RAISING, count=rng.randint(0, 6))],
            )
        )
    students = ["ps_" + format(rng.getrandbits(128), "032x") for _ in range(30)]
    for _ in range(200):  # tablets: answers, hand raises, views
        ms = rng.randint(start, end - 1)
        trace = add(f"tab-{rng.randint(1, 3)}", DK.DEVICE_KIND_TABLET, ms)
        verb = rng.choice([LT.VERB_ANSWERED] * 3 + [LT.VERB_HAND_RAISED, LT.VERB_VIEWED])
        trace.trace.CopyFrom(
            LT(student_id=rng.choice(students), verb=verb, item_id=f"q-{rng.randint(1, 8)}", context=1)
        )
        if verb == LT.VERB_ANSWERED:
            trace.trace.correct = rng.random() < 0.7
    for device, kind in [("app-1", 5), ("cam-1", 1), ("tab-1", 3), ("tab-2", 3), ("tab-3", 3)]:
        for ms in range(start, end, 30_000):
            hb = add(device, kind, ms + 1, in_lesson=False)
            hb.heartbeat.CopyFrom(pb.DeviceHeartbeat(battery_pct=80, interval_s=30, firmware="1.0"))
    ended = add("app-1", DK.DEVICE_KIND_TEACHER_APP, end)
    ended.lesson.CopyFrom(pb.LessonLifecycle(phase=2, teacher_id="t-0042"))
    events.sort(key=lambda e: (e.occurred_at.seconds, e.occurred_at.nanos, e.event_id))
    seqs: dict[str, int] = {}
    for event in events:
        seqs[event.device_id] = seqs.get(event.device_id, 0) + 1
        event.seq = seqs[event.device_id]
    return events


def chunks(events: list[pb.Event], size: int) -> list[bytes]:
    """EventBatch record values of ``size`` events each."""
    out = []
    for i in range(0, len(events), size):
        batch = pb.EventBatch()
        batch.events.extend(events[i : i + size])
        out.append(batch.SerializeToString())
    return out
