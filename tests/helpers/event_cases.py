"""Valid events of each payload and the docs/DESIGN.md §4 rule cases: (payload, mutation, field, reason)."""

from __future__ import annotations

from datetime import UTC, datetime

from classtrace.v1 import events_pb2 as pb
from tests.helpers.strategies import NOW

LL, TB, CO, LT = pb.LessonLifecycle, pb.TeachingBehavior, pb.ClassObservation, pb.LearningTrace
PS = "ps_" + "0123456789abcdef" * 2
DAY = 86_400
_YEAR_AGO = datetime.fromtimestamp(NOW - 400 * DAY, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def make(kind: str) -> pb.Event:
    """A valid event carrying a ``kind`` payload, occurred a minute before NOW."""
    event = pb.Event(
        event_id="0b6f3c2e-5d1a-4c8e-9f4a-2f1e0c9b7a65",
        school_id="sch-0001",
        classroom_id="room-0203",
        device_id="cam-01",
        lesson_id="lsn-000042",
        seq=7,
        device_kind=pb.DEVICE_KIND_CAMERA,
    )
    event.occurred_at.seconds = int(NOW) - 60
    if kind == "lesson":
        event.lesson.CopyFrom(
            LL(phase=LL.PHASE_STARTED, teacher_id="t-7", subject="数学", grade="G7", enrolled=42)
        )
    elif kind == "teaching":
        event.teaching.CopyFrom(
            TB(kind=TB.KIND_LECTURING, teacher_id="t-7", duration_ms=30_000, confidence=0.9)
        )
    elif kind == "observation":
        counts = [CO.BehaviorCount(behavior=CO.BEHAVIOR_READING, count=12)]
        event.observation.CopyFrom(CO(present=40, attentive=35, counts=counts))
    elif kind == "trace":
        event.trace.CopyFrom(
            LT(student_id=PS, verb=LT.VERB_ANSWERED, item_id="q-1", score=1.0, context=LT.CONTEXT_QUIZ)
        )
    elif kind == "heartbeat":
        event.heartbeat.CopyFrom(
            pb.DeviceHeartbeat(battery_pct=80, cpu_pct=12.5, firmware="1.4.2", interval_s=30)
        )
    return event


def _setter(path: str, value: object):
    def mutate(ev: pb.Event) -> None:
        *parents, leaf = path.split(".")
        target: object = ev
        for part in parents:
            target = getattr(target, part)
        setattr(target, leaf, value)

    return mutate


def _at(offset_s: float):
    def mutate(ev: pb.Event) -> None:
        whole = int(NOW + offset_s)
        ev.occurred_at.seconds = whole
        ev.occurred_at.nanos = round((NOW + offset_s - whole) * 1e9)

    return mutate


def _add_count(behavior: int, count: int):
    return lambda ev: ev.observation.counts.add(behavior=behavior, count=count)


GOOD = [
    ("trace", lambda ev: None, "baseline trace"),
    ("lesson", lambda ev: None, "baseline lesson"),
    ("teaching", lambda ev: None, "baseline teaching"),
    ("observation", lambda ev: None, "baseline observation"),
    ("heartbeat", lambda ev: None, "baseline heartbeat"),
    ("trace", _setter("event_id", "0B6F3C2E-5D1A-4C8E-9F4A-2F1E0C9B7A65"), "uppercase uuid"),
    ("trace", _setter("school_id", "s" * 64), "id of 64 chars"),
    ("trace", _setter("classroom_id", "A-z_0.9:x"), "id with every punctuation allowed"),
    ("trace", _setter("lesson_id", ""), "no lesson"),
    ("trace", _setter("device_kind", pb.DEVICE_KIND_GATEWAY_SIM), "simulator device"),
    ("trace", _at(300), "exactly 5 min ahead"),
    ("trace", _at(-7 * DAY), "exactly 7 days old"),
    ("trace", lambda ev: ev.received_at.FromSeconds(10**10), "device received_at is ignored"),
    ("lesson", _setter("lesson.phase", LL.PHASE_ENDED), "ended"),
    (
        "lesson",
        lambda ev: (_setter("lesson.phase", LL.PHASE_ENDED)(ev), ev.lesson.ClearField("teacher_id")),
        "ended, no teacher",
    ),
    ("lesson", _setter("lesson.enrolled", 500), "enrolled 500"),
    ("lesson", _setter("lesson.enrolled", 0), "enrolled unknown"),
    ("teaching", _setter("teaching.teacher_id", ""), "camera without teacher id"),
    ("teaching", _setter("teaching.duration_ms", 4 * 3600 * 1000), "4 h segment"),
    ("teaching", _setter("teaching.confidence", 0.0), "confidence 0"),
    ("teaching", _setter("teaching.confidence", 1.0), "confidence 1"),
    ("teaching", _setter("teaching.kind", TB.KIND_LISTENING), "non-T kind"),
    ("observation", _setter("observation.present", 500), "present 500"),
    ("observation", _setter("observation.attentive", 40), "attentive == present"),
    ("observation", lambda ev: ev.observation.Clear(), "empty classroom"),
    ("observation", _add_count(CO.BEHAVIOR_HAND_RAISING, 40), "count == present"),
    ("trace", _setter("trace.verb", LT.VERB_VIEWED), "viewed"),
    (
        "trace",
        lambda ev: (_setter("trace.verb", LT.VERB_VIEWED)(ev), ev.trace.ClearField("item_id")),
        "viewed, no item",
    ),
    ("trace", _setter("trace.context", LT.CONTEXT_UNSPECIFIED), "context unknown to the device"),
    ("trace", _setter("trace.correct", False), "graded wrong"),
    (
        "trace",
        lambda ev: ev.trace.knowledge_points.extend(["一元一次方程", ""]),
        "free-text knowledge points",
    ),
    ("heartbeat", _setter("heartbeat.battery_pct", 0.0), "battery empty"),
    ("heartbeat", _setter("heartbeat.battery_pct", 100.0), "battery full"),
    ("heartbeat", _setter("heartbeat.interval_s", 86_400), "daily heartbeat"),
]


BAD = [
    # envelope
    ("trace", _setter("event_id", "xyz"), "event_id", "must be a UUID, got 'xyz'"),
    ("trace", _setter("event_id", ""), "event_id", "must be a UUID, got ''"),
    ("trace", _setter("event_id", "0b6f3c2e5d1a4c8e9f4a2f1e0c9b7a65"), "event_id", "must be a UUID"),
    ("trace", _setter("event_id", "00000000-0000-0000-0000-000000000000"), "event_id", "nil UUID"),
    (
        "trace",
        _setter("school_id", "a b"),
        "school_id",
        "must be 1–64 characters of [A-Za-z0-9_.:-], got 'a b'",
    ),
    ("trace", _setter("school_id", ""), "school_id", "must be set"),
    ("trace", _setter("school_id", "s" * 65), "school_id", "must be 1–64 characters"),
    ("trace", _setter("school_id", "x" * 500), "school_id", "...'"),  # long values are cut
    ("trace", _setter("classroom_id", "班级1"), "classroom_id", "got '班级1'"),
    ("trace", _setter("classroom_id", ""), "classroom_id", "must be set"),
    ("trace", _setter("device_id", "dev/1"), "device_id", "got 'dev/1'"),
    ("trace", _setter("device_id", ""), "device_id", "must be set"),
    ("trace", _setter("lesson_id", "lesson 1"), "lesson_id", "got 'lesson 1'"),
    ("trace", _setter("device_kind", 0), "device_kind", "must be set (got DEVICE_KIND_UNSPECIFIED)"),
    ("trace", _setter("device_kind", 99), "device_kind", "unknown enum value 99"),
    ("trace", lambda ev: ev.ClearField("occurred_at"), "occurred_at", "must be set"),
    ("trace", _at(312), "occurred_at", "is 312 s in the future of the receiver clock (limit 300 s)"),
    ("trace", _at(300.5), "occurred_at", "in the future"),
    ("trace", _at(-7 * DAY - 1), "occurred_at", "is older than 7 days"),
    ("trace", _at(-400 * DAY), "occurred_at", _YEAR_AGO),
    ("trace", _setter("occurred_at.nanos", -1), "occurred_at", "nanos must be in [0, 999999999], got -1"),
    (
        "trace",
        lambda ev: ev.ClearField("trace"),
        "payload",
        "exactly one payload is required (lesson, teaching, observation, trace or heartbeat), got none",
    ),
    # lesson
    ("lesson", _setter("lesson_id", ""), "lesson_id", "must be set on a lesson lifecycle event"),
    ("lesson", _setter("lesson.phase", 0), "lesson.phase", "must be set (got PHASE_UNSPECIFIED)"),
    ("lesson", _setter("lesson.phase", 7), "lesson.phase", "unknown enum value 7"),
    ("lesson", _setter("lesson.teacher_id", ""), "lesson.teacher_id", "must be set when a lesson starts"),
    ("lesson", _setter("lesson.teacher_id", "t 7"), "lesson.teacher_id", "got 't 7'"),
    ("lesson", _setter("lesson.enrolled", 501), "lesson.enrolled", "501 exceeds 500"),
    ("lesson", _setter("lesson.subject", "m" * 65), "lesson.subject", "at most 64 characters, got 65"),
    ("lesson", _setter("lesson.grade", "g" * 65), "lesson.grade", "at most 64 characters"),
    # teaching
    ("teaching", _setter("teaching.kind", 0), "teaching.kind", "must be set (got KIND_UNSPECIFIED)"),
    ("teaching", _setter("teaching.kind", 99), "teaching.kind", "unknown enum value 99"),
    ("teaching", _setter("teaching.teacher_id", "t;7"), "teaching.teacher_id", "got 't;7'"),
    ("teaching", _setter("teaching.duration_ms", 0), "teaching.duration_ms", "must be in (0, 14400000]"),
    (
        "teaching",
        _setter("teaching.duration_ms", 4 * 3600 * 1000 + 1),
        "teaching.duration_ms",
        "got 14400001",
    ),
    ("teaching", _setter("teaching.confidence", 1.5), "teaching.confidence", "must be in [0, 1], got 1.5"),
    ("teaching", _setter("teaching.confidence", -0.25), "teaching.confidence", "got -0.25"),
    ("teaching", _setter("teaching.confidence", float("nan")), "teaching.confidence", "got nan"),
    # observation
    ("observation", _setter("observation.attentive", 41), "observation.attentive", "41 exceeds present 40"),
    ("observation", _setter("observation.present", 600), "observation.present", "600 exceeds 500"),
    (
        "observation",
        _add_count(CO.BEHAVIOR_WRITING, 41),
        "observation.counts[1].count",
        "41 exceeds present 40",
    ),
    (
        "observation",
        _add_count(0, 1),
        "observation.counts[1].behavior",
        "must be set (got BEHAVIOR_UNSPECIFIED)",
    ),
    ("observation", _add_count(42, 1), "observation.counts[1].behavior", "unknown enum value 42"),
    (
        "observation",
        _add_count(CO.BEHAVIOR_READING, 1),
        "observation.counts[1].behavior",
        "BEHAVIOR_READING is counted twice",
    ),
    # trace
    (
        "trace",
        _setter("trace.student_id", "20230517"),
        "trace.student_id",
        "must be a pseudonym 'ps_' + 32 lowercase hex (computed on the device); "
        "raw student identifiers are not accepted",
    ),
    ("trace", _setter("trace.student_id", ""), "trace.student_id", "must be a pseudonym"),
    ("trace", _setter("trace.student_id", PS.upper()), "trace.student_id", "lowercase hex"),
    ("trace", _setter("trace.verb", 0), "trace.verb", "must be set (got VERB_UNSPECIFIED)"),
    ("trace", _setter("trace.verb", 99), "trace.verb", "unknown enum value 99"),
    ("trace", _setter("trace.item_id", ""), "trace.item_id", "must be set for VERB_ANSWERED"),
    ("trace", _setter("trace.item_id", "q 1"), "trace.item_id", "got 'q 1'"),
    ("trace", _setter("trace.context", 99), "trace.context", "unknown enum value 99"),
    ("trace", _setter("trace.score", -1.0), "trace.score", "must be a finite number ≥ 0, got -1"),
    ("trace", _setter("trace.score", float("inf")), "trace.score", "got inf"),
    # heartbeat
    (
        "heartbeat",
        _setter("heartbeat.interval_s", 0),
        "heartbeat.interval_s",
        "must be in (0, 86400] seconds, got 0",
    ),
    ("heartbeat", _setter("heartbeat.interval_s", 86_401), "heartbeat.interval_s", "got 86401"),
    (
        "heartbeat",
        _setter("heartbeat.battery_pct", 101.0),
        "heartbeat.battery_pct",
        "must be in [0, 100], got 101",
    ),
    ("heartbeat", _setter("heartbeat.battery_pct", -1.0), "heartbeat.battery_pct", "got -1"),
    ("heartbeat", _setter("heartbeat.cpu_pct", 150.0), "heartbeat.cpu_pct", "got 150"),
    ("heartbeat", _setter("heartbeat.firmware", "f" * 65), "heartbeat.firmware", "at most 64"),
]
