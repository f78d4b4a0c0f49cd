"""Reports read what the sink wrote: summaries and metric points → teacher and lesson HTML.

Two schools both have a lesson ``L-r`` and a teacher ``t-1``: a report names one school's lesson
or teacher, and nothing of the other school's may reach it.
"""

from __future__ import annotations

import time

import pytest

from classtrace.codec import ms_to_ts
from classtrace.v1 import pipeline_pb2 as ppb
from readers.reports import load_lesson, load_teacher, render_lesson, render_teacher
from sinks.batcher import Batch, SinkTopics
from sinks.clickhouse_writer import ClickHouseWriter
from sinks.metrics import sink_metrics
from tests.helpers.sinkdata import lesson_summary

pytestmark = pytest.mark.integration


def _points(school: str, classroom: str, value: float, n: int) -> list[ppb.MetricUpdate]:
    now = int(time.time() * 1000)
    points = []
    for i in range(n):
        p = ppb.MetricUpdate(
            school_id=school, classroom_id=classroom, lesson_id="L-r", metric="attention_rate", value=value
        )
        ms_to_ts(now - 600_000 + i * 10_000, p.window_start)
        ms_to_ts(now - 590_000 + i * 10_000, p.window_end)
        points.append(p)
    return points


@pytest.fixture
def two_schools(ch_db):
    """School s0: lessons L-r and L-q by t-1 (dialogue). School s1: its own L-r by its own t-1."""
    other = lesson_summary("L-r", school="s1", classroom="C101")
    other.teaching_mode, other.st_rt, other.attention_rate = "practice", 0.2, 0.31
    summaries = [lesson_summary("L-r"), lesson_summary("L-q"), other]
    points = _points("s0", "s0-c0", 0.6, 6) + _points("s1", "C101", 0.3, 3)
    batch = Batch(SinkTopics("ev", "me", "dl"), sink_metrics())
    batch.add("me", 0, 0, ppb.MetricBatch(summaries=summaries, points=points).SerializeToString())
    writer = ClickHouseWriter(ch_db.client, ch_db.database, sink_metrics())
    for table in ("lesson_summary", "metric_points"):
        assert writer.write(batch.blocks[table], batch.token(table)) == []
    return ch_db


def test_a_lesson_report_reads_only_its_schools_lesson(two_schools):
    db = two_schools
    s0 = load_lesson(db.client, db.database, "s0", "L-r")
    s1 = load_lesson(db.client, db.database, "s1", "L-r")
    assert s0 is not None and s1 is not None
    assert (s0.summary["school_id"], s0.summary["teaching_mode"], len(s0.attention)) == ("s0", "dialogue", 6)
    assert (s1.summary["school_id"], s1.summary["teaching_mode"], len(s1.attention)) == ("s1", "practice", 3)
    assert {v for _, v in s1.attention} == {0.3}
    assert "课堂报告 L-r" in render_lesson(s0)
    assert load_lesson(db.client, db.database, "s1", "L-q") is None  # L-q is s0's only
    assert load_lesson(db.client, db.database, "s0", "nope") is None


def test_a_teacher_report_is_one_schools_teacher(two_schools):
    db = two_schools
    s0 = load_teacher(db.client, db.database, "s0", "t-1")
    s1 = load_teacher(db.client, db.database, "s1", "t-1")
    assert s0 is not None and sum(w["lessons"] for w in s0.weeks) == 2
    assert {r["lesson_id"] for r in s0.lessons} == {"L-r", "L-q"}
    assert s1 is not None and sum(w["lessons"] for w in s1.weeks) == 1
    assert [r["teaching_mode"] for r in s1.lessons] == ["practice"]
    assert "Teacher digital portrait t-1" in render_teacher(s0, "en")
    assert load_teacher(db.client, db.database, "s2", "t-1") is None
    assert load_teacher(db.client, db.database, "s0", "nobody") is None


def test_report_cli_takes_the_school_and_writes_that_schools_lesson(two_schools, tmp_path, capsys):
    from classtrace.cli import main

    db = two_schools
    store = ["--clickhouse-url", db.url, "--database", db.database, "--data-dir", str(tmp_path)]
    out = tmp_path / "lesson.html"
    assert main(["report", "lesson", "L-r", "--school", "s1", "--lang", "en", "--out", str(out), *store]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    html = out.read_text(encoding="utf-8")
    assert "Lesson report L-r" in html and "C101" in html and "s0-c0" not in html
    assert main(["report", "lesson", "L-q", "--school", "s1", *store]) == 1
    assert "no data for lesson 'L-q' of school 's1'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as missing:
        main(["report", "lesson", "L-r", *store])
    assert missing.value.code == 2 and "--school" in capsys.readouterr().err
