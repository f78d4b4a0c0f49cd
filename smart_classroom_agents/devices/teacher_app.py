"""The teacher-assistant app: opens and closes lessons (the S-T clock's start and end)."""

from __future__ import annotations

from classtrace.v1 import events_pb2 as pb
from smart_classroom_agents.devices.base import FIRST, LAST, Device, Emission
from smart_classroom_agents.timetable import Lesson

__all__ = ["lesson_lifecycle"]

_PHASES = (
    (pb.LessonLifecycle.PHASE_STARTED, FIRST),
    (pb.LessonLifecycle.PHASE_ENDED, LAST),
)


def lesson_lifecycle(device: Device, lesson: Lesson) -> list[Emission]:
    """PHASE_STARTED at the lesson's start and PHASE_ENDED at its end, with the lesson's facts."""
    out: list[Emission] = []
    for (phase, order), at in zip(_PHASES, (lesson.start_ms, lesson.end_ms), strict=True):
        event = device.event(lesson.lesson_id, at)
        event.lesson.phase = phase
        event.lesson.teacher_id = lesson.teacher_id
        event.lesson.subject = lesson.subject
        event.lesson.grade = lesson.grade
        event.lesson.enrolled = lesson.enrolled
        out.append(Emission(at, order, event))
    return out
