"""Report rendering without a store: offline HTML, zh-CN by default, English switch, escaping."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from readers.reports.data import LessonData, TeacherData
from readers.reports.render import render_lesson, render_teacher
from readers.reports.svg import st_curve

STARTED = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
SUMMARY = {
    "lesson_id": "L-1", "school_id": "s1", "classroom_id": "c1", "teacher_id": "t<1>", "subject": "math",
    "grade": "G7", "started_at": STARTED, "st_rt": 0.55, "st_ch": 0.45, "st_codes": "TTSSTSTT",
    "teaching_mode": "dialogue", "attention_rate": 0.8, "participation_rate": None, "answers": 10,
    "answer_accuracy": 0.7, "hand_raises": 3,
}  # fmt: skip
WEEK = {
    "school_id": "s1", "teacher_id": "t-1", "iso_year": 2026, "iso_week": 47, "lessons": 3,
    "avg_st_rt": 0.5, "avg_st_ch": 0.3,
    "lecture_lessons": 1, "practice_lessons": 1, "dialogue_lessons": 1, "mixed_lessons": 0,
    "avg_attention": 0.8, "avg_accuracy": None,
}  # fmt: skip


def lesson():
    series = [(STARTED.replace(minute=m), 0.5 + m / 100) for m in range(5)]
    return LessonData(SUMMARY, attention=series, hand_raising=[(STARTED, 2.0)])


def teacher():
    return TeacherData("s1", "t-1", [WEEK, {**WEEK, "iso_week": 48}], [SUMMARY])


@pytest.mark.parametrize(
    "render", [lambda lang: render_lesson(lesson(), lang), lambda lang: render_teacher(teacher(), lang)]
)
def test_reports_are_offline_and_bilingual(render):
    zh, en = render("zh"), render("en")
    for html in (zh, en):
        assert "<svg" in html and '<meta charset="utf-8">' in html
        # nothing fetched from the network: no scripts, no external stylesheets or images
        assert not re.search(r"(src|href)=\"https?://", html) and "<script" not in html
    assert 'lang="zh-CN"' in zh and 'lang="en"' in en
    assert ("课堂报告" in zh or "教师数字画像" in zh) and "Lesson report" not in zh
    assert "Lesson report" in en or "Teacher digital portrait" in en


def test_lesson_report_content_and_escaping():
    html = render_lesson(lesson(), "zh")
    assert "对话型" in html and "80.0%" in html and "—" in html  # participation NULL → dash
    assert "t&lt;1&gt;" in html and "t<1>" not in html


def test_st_curve_steps():
    svg = st_curve("TTS")
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    assert len(points) == 4
    xs = [float(p.split(",")[0]) for p in points]
    ys = [float(p.split(",")[1]) for p in points]
    assert xs[0] == xs[1] == xs[2] < xs[3] and ys[0] > ys[1] > ys[2] == ys[3]


def test_teacher_report_names_the_teacher_and_its_school():
    # a teacher id is unique only within its school: the report must say which school's teacher
    html = render_teacher(TeacherData("school-北", "t-1", [WEEK], [SUMMARY]), "en")
    assert "Teacher digital portrait t-1" in html and "school-北" in html
