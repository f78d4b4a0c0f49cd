"""The timetable of a run: which lessons each simulated classroom holds, when, and in what style.

Everything here is drawn from a seeded random generator, so the same seed gives the same schools,
teachers, subjects and styles; only the anchor time (when the run starts) moves the lessons.
Styles rotate through lecture / practice / dialogue / mixed so that even a small run covers all
four S-T modes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from smart_classroom_agents.scripts import STYLES, Style

__all__ = ["Classroom", "Lesson", "build_timetable"]

SUBJECTS = ("math", "chinese", "english", "physics", "chemistry", "biology", "history")
GRADES = ("G7", "G8", "G9", "G10", "G11")
CLASSROOMS_PER_SCHOOL = 8


@dataclass(frozen=True, slots=True)
class Lesson:
    """One scripted lesson: [start_ms, end_ms) in event time."""

    lesson_id: str
    teacher_id: str
    subject: str
    grade: str
    enrolled: int
    style: Style
    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        """Length of the lesson in milliseconds."""
        return self.end_ms - self.start_ms


@dataclass(frozen=True, slots=True)
class Classroom:
    """A simulated classroom: its ids, class size and lessons in time order."""

    index: int
    school_id: str
    classroom_id: str
    enrolled: int
    lessons: tuple[Lesson, ...]

    @property
    def end_ms(self) -> int:
        """When the classroom's last lesson ends."""
        return self.lessons[-1].end_ms if self.lessons else 0


def build_timetable(
    seed: int,
    classrooms: int,
    lessons: int,
    start_ms: int,
    *,
    lesson_minutes: float = 40.0,
    break_minutes: float = 10.0,
    run_tag: str = "",
    shared_room_numbers: bool = False,
) -> list[Classroom]:
    """``classrooms`` classrooms with ``lessons`` lessons each, the first starting at ``start_ms``.

    Lesson lengths get up to 20 s of jitter so lesson ends do not fall on S-T sample instants;
    ``run_tag`` (default: derived from ``start_ms``) keeps lesson ids of two runs distinct.
    ``shared_room_numbers`` names rooms ``room-01`` … in every school, as real schools do, so
    classroom ids repeat across schools (lesson ids stay distinct: they start with the school).
    """
    if lesson_minutes < 3:
        raise ValueError("lessons must last at least 3 minutes (6 S-T samples) to have a mode")
    tag = run_tag or f"{start_ms // 1000:x}"
    out: list[Classroom] = []
    for c in range(classrooms):
        rng = random.Random(f"timetable:{seed}:{c}")
        school_id = f"sch-{c // CLASSROOMS_PER_SCHOOL + 1:03d}"
        room = f"room-{c % CLASSROOMS_PER_SCHOOL + 1:02d}"
        classroom_id = room if shared_room_numbers else f"{school_id}-{room}"
        enrolled = rng.randint(30, 48)
        grade = rng.choice(GRADES)
        items: list[Lesson] = []
        at = start_ms + rng.randint(0, 30_000)
        for n in range(lessons):
            duration = int(lesson_minutes * 60_000) + rng.randint(500, 20_000)
            style = STYLES[(c + n) % len(STYLES)]
            items.append(
                Lesson(
                    lesson_id=f"{school_id}-{room}-{tag}-{n + 1:02d}",
                    teacher_id=f"tch-{c // CLASSROOMS_PER_SCHOOL + 1:03d}-{rng.randint(1, 30):02d}",
                    subject=rng.choice(SUBJECTS),
                    grade=grade,
                    enrolled=enrolled,
                    style=style,
                    start_ms=at,
                    end_ms=at + duration,
                )
            )
            at += duration + int(break_minutes * 60_000)
        out.append(Classroom(c, school_id, classroom_id, enrolled, tuple(items)))
    return out
