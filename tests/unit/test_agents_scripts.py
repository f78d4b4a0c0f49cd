"""Teaching-style scripts: the S-T mode of every scripted lesson is right by construction."""

from __future__ import annotations

import itertools
import random

import pytest

from smart_classroom_agents.classroom import classroom_stream
from smart_classroom_agents.ground_truth import GroundTruth
from smart_classroom_agents.runner import SimulationPlan, plan_classrooms
from smart_classroom_agents.scripts import SAMPLE_MS, STYLES, Style, sample_count, st_codes, windows

NOW_MS = 1_790_000_000_000


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("n", [6, 7, 11, 81, 120])
def test_windows_hold_exactly_their_runs_samples(style, n):
    rng = random.Random(f"{style}{n}")
    start = NOW_MS
    end = start + (n - 1) * SAMPLE_MS + rng.randint(1, SAMPLE_MS)
    assert sample_count(end - start) == n
    codes = st_codes(style, n, rng)
    plan = windows(start, end, codes, rng)
    assert plan[0].start_ms == start and plan[-1].end_ms == end
    for a, b in itertools.pairwise(plan):
        assert a.end_ms == b.start_ms and a.teacher != b.teacher
    for k, code in enumerate(codes):
        t = start + k * SAMPLE_MS
        (window,) = [w for w in plan if w.start_ms <= t < w.end_ms]
        assert window.teacher == code and window.first_sample <= k <= window.last_sample


def test_too_short_a_lesson_is_refused():
    with pytest.raises(ValueError, match="too few"):
        st_codes(Style.DIALOGUE, 5, random.Random(0))


@pytest.mark.parametrize(("lesson_minutes", "seed"), [(3, 1), (5, 2), (40, 3)])
def test_every_scripted_lesson_has_its_mode_in_ground_truth(lesson_minutes, seed):
    """The whole device mix (camera, audio, whiteboard segments) keeps each lesson's mode."""
    plan = SimulationPlan(
        classrooms=4, lessons=4, seed=seed, speed=0, lesson_minutes=lesson_minutes, break_minutes=1
    )
    start, rooms = plan_classrooms(plan, NOW_MS)
    truth = GroundTruth()
    for room in rooms:
        truth.add_all(event for _, event in classroom_stream(room, seed, b"k", start))
    expected = {lesson.lesson_id: lesson.style.value for room in rooms for lesson in room.lessons}
    got = {lesson_id: summary.teaching_mode for lesson_id, summary in truth.lessons().items()}
    assert got == expected
    assert set(expected.values()) == {s.value for s in Style}
