"""The ``teacher_portrait`` view (migration 0007) on chDB: a teacher is (school_id, teacher_id).

Teacher ids are issued by each school, so two schools may both have a ``t-01``. Their lessons must
give two portraits, each with its own counts and means, never one merged teacher.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.helpers.clock import MONDAY  # Mon 09:00 Asia/Shanghai of a week that is over

pytestmark = pytest.mark.integration
WEEK = MONDAY.isocalendar().week


def _summary(school: str, lesson: str, started: datetime, mode: str, st_rt: float, attention: float | None):
    return {
        "lesson_id": lesson, "school_id": school, "classroom_id": "C101", "teacher_id": "t-01",
        "subject": "math", "grade": "G7", "started_at": started, "ended_at": started + timedelta(minutes=40),
        "st_samples": 80, "st_rt": st_rt, "st_ch": 0.2, "st_codes": "TS", "teaching_mode": mode,
        "attention_rate": attention, "participation_rate": 0.9, "answers": 10, "answer_accuracy": 0.5,
        "hand_raises": 2, "enrolled": 40, "computed_at": started + timedelta(minutes=41), "final": True,
        "version": 1,
    }  # fmt: skip


def test_the_same_teacher_id_at_two_schools_gives_two_portraits(ch_db):
    # Both schools' t-01 teach in room C101 the same week, with the same lesson id L-1.
    rows = [
        _summary("north", "L-1", MONDAY, "lecture", 0.8, 0.9),
        _summary("north", "L-2", MONDAY + timedelta(days=1), "lecture", 0.9, 0.7),
        _summary("south", "L-1", MONDAY, "practice", 0.2, 0.4),
    ]
    names = list(rows[0])
    ch_db.client.insert("lesson_summary", [[r[n] for n in names] for r in rows], column_names=names)
    got = ch_db.client.query(
        "SELECT school_id, teacher_id, iso_week, lessons, avg_st_rt, lecture_lessons, practice_lessons,"
        " avg_attention FROM teacher_portrait ORDER BY school_id"
    ).result_rows
    assert [r[:7] for r in got] == [
        ("north", "t-01", WEEK, 2, pytest.approx(0.85), 2, 0),
        ("south", "t-01", WEEK, 1, pytest.approx(0.2), 0, 1),
    ]
    assert got[0][7] == pytest.approx(0.8) and got[1][7] == pytest.approx(0.4)


def test_the_portrait_has_school_id_in_place_of_the_schools_array(ch_db):
    columns = [row[0] for row in ch_db.client.query("DESCRIBE TABLE teacher_portrait").result_rows]
    assert columns[:2] == ["school_id", "teacher_id"] and "schools" not in columns
