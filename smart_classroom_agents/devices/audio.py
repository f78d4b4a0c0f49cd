"""The audio unit: speaker segmentation — stretches of teacher talk, reported as teaching segments.

Teacher talk only happens while the teacher acts, so every talk segment lies strictly inside a T
window of the script: the audio unit adds evidence to T samples and never turns an S sample into T.
"""

from __future__ import annotations

import random

from classtrace.v1 import events_pb2 as pb
from smart_classroom_agents.devices.base import Device, Emission, segment
from smart_classroom_agents.scripts import Style, Window
from smart_classroom_agents.timetable import Lesson

__all__ = ["inner_segments", "teacher_talk"]

_K = pb.TeachingBehavior


def inner_segments(
    device: Device,
    lesson: Lesson,
    plan: list[Window],
    kind: pb.TeachingBehavior.Kind.ValueType,
    chance: float,
    rng: random.Random,
) -> list[Emission]:
    """With probability ``chance`` per T window, one ``kind`` segment strictly inside it."""
    out: list[Emission] = []
    for window in plan:
        if not window.teacher or rng.random() >= chance:
            continue
        span = window.end_ms - window.start_ms
        lo = window.start_ms + rng.randint(0, span // 4)
        hi = window.end_ms - rng.randint(0, span // 4)
        if hi > lo:
            out.append(
                segment(
                    device,
                    lesson.lesson_id,
                    lesson.teacher_id,
                    kind,
                    lo,
                    hi,
                    round(rng.uniform(0.6, 0.95), 2),
                )
            )
    return out


def teacher_talk(device: Device, lesson: Lesson, plan: list[Window], rng: random.Random) -> list[Emission]:
    """Talk segments: questioning in a dialogue lesson, lecturing otherwise."""
    kind = _K.KIND_QUESTIONING if lesson.style is Style.DIALOGUE else _K.KIND_LECTURING
    return inner_segments(device, lesson, plan, kind, 0.8, rng)
