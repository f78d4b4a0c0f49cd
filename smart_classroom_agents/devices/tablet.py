"""Student tablets: views, answers, retries and hand raises from a per-student ability model.

The classroom's tablets sync through one tablet hub (one device id and one gateway token per
classroom, not per tablet), which keeps device registration O(classrooms). Students are known by
raw school numbers only inside this module: every trace leaves with the keyed pseudonym of
docs/DESIGN.md §4, computed here, on the device.

Answers follow a one-parameter logistic (Rasch) model: P(correct) = 1 / (1 + e^(b − θ)) for a
student of ability θ and an item of difficulty b; latencies are log-normal; a wrong first answer
is sometimes retried (only the first attempt counts for accuracy, docs/DESIGN.md §7).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from classtrace.ids import pseudonymise
from classtrace.v1 import events_pb2 as pb
from smart_classroom_agents.devices.base import NORMAL, Device, Emission
from smart_classroom_agents.scripts import Style, Window
from smart_classroom_agents.timetable import Lesson

__all__ = ["Student", "attendance", "learning_traces", "roster"]

_V = pb.LearningTrace
_ITEMS = {Style.LECTURE: 3, Style.PRACTICE: 10, Style.DIALOGUE: 6, Style.MIXED: 6}
_HAND_RAISES = {Style.LECTURE: 0.5, Style.PRACTICE: 0.3, Style.DIALOGUE: 3.0, Style.MIXED: 1.2}


@dataclass(frozen=True, slots=True)
class Student:
    """A student as the device knows them: ``raw_id`` never leaves the device."""

    raw_id: str
    ability: float
    diligence: float


def roster(school_id: str, classroom_id: str, size: int, rng: random.Random) -> list[Student]:
    """The class list with each student's latent ability θ ~ N(0, 1) and diligence."""
    base = sum(map(ord, classroom_id)) * 100
    return [
        Student(f"{school_id}-{base + n:06d}", rng.gauss(0.0, 1.0), rng.uniform(0.7, 0.98))
        for n in range(size)
    ]


def attendance(students: list[Student], rng: random.Random) -> list[Student]:
    """Who is in class today (about 4 % absent)."""
    return [s for s in students if rng.random() >= 0.04]


def _trace(
    device: Device, lesson: Lesson, student: str, verb: _V.Verb.ValueType, at: int
) -> tuple[Emission, pb.LearningTrace]:
    event = device.event(lesson.lesson_id, at)
    event.trace.student_id = student
    event.trace.verb = verb
    event.trace.context = _V.CONTEXT_QUIZ if lesson.style is Style.PRACTICE else _V.CONTEXT_IN_CLASS
    return Emission(at, NORMAL, event), event.trace


def learning_traces(
    device: Device,
    lesson: Lesson,
    plan: list[Window],
    present: list[Student],
    key: bytes,
    rng: random.Random,
) -> list[Emission]:
    """Every trace of one lesson, each strictly inside [start, end − 1 s)."""
    last_ms = lesson.end_ms - 1000
    ps = {s.raw_id: pseudonymise(key, device.school_id, s.raw_id) for s in present}
    active = [s for s in present if rng.random() < s.diligence]
    student_windows = [w for w in plan if not w.teacher] or plan
    out: list[Emission] = []
    for i in range(_ITEMS[lesson.style]):
        window = rng.choice(student_windows)
        release = window.start_ms + rng.randint(0, max(1, (window.end_ms - window.start_ms) * 3 // 5))
        item_id = f"{lesson.lesson_id}-q{i + 1:02d}"
        difficulty = rng.gauss(0.0, 0.8)
        points = [f"{lesson.subject}.kp{rng.randint(1, 40):02d}"]
        for student in active:
            if rng.random() >= 0.85:
                continue
            seen = release + rng.randint(500, 5000)
            latency = int(rng.lognormvariate(math.log(35_000), 0.5))
            answered = seen + latency
            if answered >= last_ms:
                continue
            out.append(_trace(device, lesson, ps[student.raw_id], _V.VERB_VIEWED, seen)[0])
            p = 1.0 / (1.0 + math.exp(difficulty - student.ability))
            attempts = [rng.random() < p]
            if not attempts[0] and rng.random() < 0.3:
                attempts.append(rng.random() < min(0.95, p + 0.3))
            for n, correct in enumerate(attempts):
                at = answered + n * rng.randint(15_000, 45_000)
                if at >= last_ms:
                    break
                emission, trace = _trace(device, lesson, ps[student.raw_id], _V.VERB_ANSWERED, at)
                trace.item_id = item_id
                trace.knowledge_points.extend(points)
                trace.correct = correct
                trace.score = 1.0 if correct else 0.0
                trace.latency_ms = latency if n == 0 else at - answered
                out.append(emission)
    out.extend(_hand_raises(device, lesson, plan, active, ps, rng))
    return out


def _hand_raises(
    device: Device,
    lesson: Lesson,
    plan: list[Window],
    active: list[Student],
    ps: dict[str, str],
    rng: random.Random,
) -> list[Emission]:
    """Hand raises while the teacher acts (questions invite them); more in a dialogue."""
    out: list[Emission] = []
    if not active:
        return out
    for window in plan:
        if not window.teacher:
            continue
        expected = _HAND_RAISES[lesson.style]
        count = int(expected) + (rng.random() < expected - int(expected))
        for _ in range(count):
            at = rng.randint(window.start_ms, window.end_ms - 1)
            if at < lesson.end_ms - 1000:
                student = max(rng.sample(active, k=min(3, len(active))), key=lambda s: s.ability)
                out.append(_trace(device, lesson, ps[student.raw_id], _V.VERB_HAND_RAISED, at)[0])
    return out
