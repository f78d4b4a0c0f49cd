"""The AI camera: teacher behaviour segments per script window, and a class frame every 5 s.

Segments are sent when they end (the recogniser only knows a duration then), so their emission
lags their ``occurred_at`` — as on a real camera. Inside a T window the teacher's acting is split
into several T-set kinds; an S window gets one non-T segment (patrolling, guiding, listening),
so the union of T-set segments is exactly the T windows (see :mod:`smart_classroom_agents.scripts`).
"""

from __future__ import annotations

import itertools
import random

from classtrace.v1 import events_pb2 as pb
from smart_classroom_agents.devices.base import NORMAL, Device, Emission, segment
from smart_classroom_agents.scripts import Style, Window
from smart_classroom_agents.timetable import Lesson

__all__ = ["OBSERVATION_MS", "observations", "teaching_segments"]

OBSERVATION_MS = 5_000
_K = pb.TeachingBehavior
_B = pb.ClassObservation
_T_MIX: dict[Style, tuple[pb.TeachingBehavior.Kind.ValueType, ...]] = {
    Style.LECTURE: (_K.KIND_LECTURING, _K.KIND_LECTURING, _K.KIND_DEMONSTRATING, _K.KIND_BOARD_WRITING),
    Style.PRACTICE: (_K.KIND_LECTURING, _K.KIND_DEMONSTRATING, _K.KIND_FEEDBACK),
    Style.DIALOGUE: (_K.KIND_QUESTIONING, _K.KIND_QUESTIONING, _K.KIND_FEEDBACK),
    Style.MIXED: (_K.KIND_LECTURING, _K.KIND_QUESTIONING, _K.KIND_BOARD_WRITING, _K.KIND_FEEDBACK),
}
_S_MIX = (_K.KIND_PATROLLING, _K.KIND_GUIDING, _K.KIND_LISTENING)


def _seg(
    device: Device,
    lesson: Lesson,
    kind: pb.TeachingBehavior.Kind.ValueType,
    lo: int,
    hi: int,
    rng: random.Random,
) -> Emission:
    return segment(
        device, lesson.lesson_id, lesson.teacher_id, kind, lo, hi, round(rng.uniform(0.7, 0.99), 2)
    )


def teaching_segments(
    device: Device, lesson: Lesson, plan: list[Window], rng: random.Random
) -> list[Emission]:
    """Contiguous segments tiling every window: T-set kinds in T windows, others in S windows."""
    out: list[Emission] = []
    for i, window in enumerate(plan):
        if not window.teacher:
            out.append(_seg(device, lesson, rng.choice(_S_MIX), window.start_ms, window.end_ms, rng))
            continue
        pieces = min(rng.randint(0, 3), (window.end_ms - window.start_ms) // 20_000)
        cuts = sorted(rng.sample(range(window.start_ms + 1, window.end_ms), k=pieces))
        edges = [window.start_ms, *cuts, window.end_ms]
        for j, (lo, hi) in enumerate(itertools.pairwise(edges)):
            kind = _K.KIND_ROLL_CALL if i == 0 and j == 0 else rng.choice(_T_MIX[lesson.style])
            out.append(_seg(device, lesson, kind, lo, hi, rng))
    return out


def _share(rng: random.Random, n: int, p: float) -> int:
    """About p·n students, with noise, clamped to [0, n]: a cheap stand-in for a binomial draw."""
    return max(0, min(n, round(n * p + rng.gauss(0, 1.2))))


def observations(
    device: Device, lesson: Lesson, plan: list[Window], present: int, rng: random.Random
) -> list[Emission]:
    """A frame summary every 5 s: who is present and attentive, and what they are doing.

    Attention sags in long lectures and is high while students act; hand raising follows
    questioning, writing follows practice.
    """
    out: list[Emission] = []
    focus = rng.uniform(0.72, 0.92)
    w = 0
    for at in range(lesson.start_ms, lesson.end_ms, OBSERVATION_MS):
        while plan[w].end_ms <= at:
            w += 1
        window = plan[w]
        into = (at - window.start_ms) / 60_000
        p_attentive = focus - (0.012 * into if window.teacher else -0.04)
        p_attentive = max(0.3, min(0.98, p_attentive))
        event = device.event(lesson.lesson_id, at)
        obs = event.observation
        obs.present = present
        obs.attentive = _share(rng, present, p_attentive)
        counts = (
            (_B.BEHAVIOR_LISTENING, 0.6 if window.teacher else 0.1),
            (_B.BEHAVIOR_WRITING, 0.15 if window.teacher else 0.55),
            (_B.BEHAVIOR_HAND_RAISING, 0.2 if window.teacher and lesson.style is Style.DIALOGUE else 0.02),
            (_B.BEHAVIOR_HEAD_DOWN, 1 - p_attentive),
            (_B.BEHAVIOR_USING_PHONE, 0.01),
        )
        for behavior, p in counts:
            n = _share(rng, present, p)
            if n:
                obs.counts.add(behavior=behavior, count=n)
        out.append(Emission(at, NORMAL, event))
    return out
