"""Reports read what the sink wrote: summaries and metric points → teacher and lesson HTML."""

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


def test_reports_from_the_store(ch_db):
    batch = Batch(SinkTopics("ev", "me", "dl"), sink_metrics())
    points = []
    now = int(time.time() * 1000)
    for i in range(6):
        p = ppb.MetricUpdate(
            school_id="s0", classroom_id="s0-c0", lesson_id="L-r", metric="attention_rate", value=0.6
        )
        ms_to_ts(now - 600_000 + i * 10_000, p.window_start)
        ms_to_ts(now - 590_000 + i * 10_000, p.window_end)
        points.append(p)
    mb = ppb.MetricBatch(summaries=[lesson_summary("L-r"), lesson_summary("L-q")], points=points)
    batch.add("me", 0, 0, mb.SerializeToString())
    writer = ClickHouseWriter(ch_db.client, ch_db.database, sink_metrics())
    for table in ("lesson_summary", "metric_points"):
        assert writer.write(batch.blocks[table], batch.token(table)) == []

    lesson = load_lesson(ch_db.client, ch_db.database, "L-r")
    assert lesson is not None and len(lesson.attention) == 6
    assert "课堂报告 L-r" in render_lesson(lesson)
    teacher = load_teacher(ch_db.client, ch_db.database, "t-1")
    assert teacher is not None and sum(w["lessons"] for w in teacher.weeks) == 2
    assert "Teacher digital portrait t-1" in render_teacher(teacher, "en")
    assert load_lesson(ch_db.client, ch_db.database, "nope") is None
    assert load_teacher(ch_db.client, ch_db.database, "nobody") is None
