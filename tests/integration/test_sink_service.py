"""The sink over the real broker and chDB: exact counts, lesson summaries, poison rows."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from classtrace.codec import set_ts_now
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from sinks.batcher import BatchPolicy, SinkTopics
from sinks.service import SinkService
from tests.helpers.kafka_io import produce, wait_for
from tests.helpers.sinkdata import event_batches, lesson_summary

pytestmark = pytest.mark.integration


@pytest.fixture
def topics(topic_factory):
    return SinkTopics(
        events=topic_factory(partitions=3, prefix="events"),
        metrics=topic_factory(partitions=1, prefix="metrics"),
        deadletter=topic_factory(partitions=1, prefix="dl"),
    )


def start_sink(ch_db, kafka, topics, group_id, **kw):
    sink = SinkService(
        ch_db.client,
        kafka.bootstrap,
        {},
        database=ch_db.database,
        group=group_id,
        topics=topics,
        policy=kw.pop("policy", BatchPolicy(max_rows=2_000, max_wait=0.3)),
        **kw,
    )
    sink.start()
    return sink


def test_events_duplicates_summaries_and_poison(ch_db, kafka, topics, group_id):
    records = list(event_batches(3_000, per_batch=50, seed=11))
    items = [(topics.events, key.encode(), b.SerializeToString()) for key, b in records]
    items += items[:10]  # the same records produced twice (a producer retry)
    # One event appears again inside another record (an edge device re-sending it).
    again = pb.EventBatch()
    again.events.append(records[0][1].events[0])
    items.append((topics.events, b"s0-c0", again.SerializeToString()))
    # Poison: bytes that are no EventBatch, and an event that breaks docs/DESIGN.md §4. The sink
    # does not judge events again (the gateway and the SDK do): ClickHouse refuses this one's
    # event_id, the block is written again as rows, and bisection dead-letters just that row.
    items.append((topics.events, b"x", b"\xff\xff\xffnot protobuf"))
    bad = pb.EventBatch()
    bad.events.append(pb.Event(event_id="not-a-uuid", school_id="s0", classroom_id="c", device_id="d"))
    items.append((topics.events, b"x", bad.SerializeToString()))
    # Metrics: two versions of one lesson, and a summary ClickHouse refuses (st_rt > 1).
    lesson = f"L-{uuid.uuid4().hex[:8]}"
    good = ppb.MetricBatch(summaries=[lesson_summary(lesson, version=1), lesson_summary(lesson, version=2)])
    wrong = lesson_summary("L-broken", version=1)
    wrong.st_rt = 5.0
    mixed = ppb.MetricBatch(summaries=[lesson_summary("L-ok-2"), wrong])
    items.append((topics.metrics, b"s0-c0", good.SerializeToString()))
    items.append((topics.metrics, b"s0-c0", mixed.SerializeToString()))
    # A dead letter rejected upstream by the gateway.
    # Written by an older gateway, with raw bytes: the sink keeps a digest of them, not the bytes.
    upstream_id = str(uuid.uuid4())
    upstream = ppb.DeadLetter(source="gateway", error="bad token binding", raw=b"\x01", event_id=upstream_id)
    # Stamped where it was rejected, as every writer does: an unset time (1970) is past retention
    # and the table's TTL would drop the row at insert.
    set_ts_now(upstream.received_at)
    items.append((topics.deadletter, None, upstream.SerializeToString()))
    produce(kafka.bootstrap, items)

    sink = start_sink(ch_db, kafka, topics, group_id)
    try:
        wait_for(lambda: ch_db.count("events", final=True) >= 3_000, what="3000 events")
        wait_for(lambda: ch_db.count("dead_letters") >= 4, what="4 dead letters")
        wait_for(lambda: ch_db.count("lesson_summary", final=True) >= 2, what="2 summaries")
        assert sink.alive()
    finally:
        sink.stop()
    assert sink.failure is None
    db = ch_db.database
    assert ch_db.count("events", final=True) == 3_000
    q = ch_db.client.query
    assert q(f"SELECT uniqExact(event_id) FROM {db}.events").result_rows[0][0] == 3_000
    ((version, mode, rt),) = q(
        f"SELECT version, teaching_mode, st_rt FROM {db}.lesson_summary FINAL WHERE lesson_id = %(l)s",
        parameters={"l": lesson},
    ).result_rows
    assert (version, mode, rt) == (2, "dialogue", 0.62)
    assert (
        q(f"SELECT count() FROM {db}.lesson_summary FINAL WHERE lesson_id = 'L-broken'").result_rows[0][0]
        == 0
    )
    letters = q(f"SELECT source, error, event_id FROM {db}.dead_letters FINAL ORDER BY error").result_rows
    errors = " | ".join(e for _, e, _ in letters)
    assert len(letters) == 4, letters
    assert "not a EventBatch" in errors or "not an EventBatch" in errors
    assert "refused by ClickHouse (events)" in errors
    assert "refused by ClickHouse (lesson_summary)" in errors and "st_rt_is_a_ratio" in errors
    assert ("gateway", "bad token binding", upstream_id) in letters
    assert q(f"SELECT count() FROM {db}.dead_letters WHERE raw != ''").result_rows[0][0] == 0
    ((length, digest),) = q(
        f"SELECT raw_length, raw_sha256 FROM {db}.dead_letters WHERE source = 'gateway'"
    ).result_rows
    assert (length, digest) == (1, hashlib.sha256(b"\x01").hexdigest())
    # The teacher portrait view sees the final lessons.
    assert (
        q(f"SELECT sum(lessons) FROM {db}.teacher_portrait WHERE teacher_id = 't-1'").result_rows[0][0] == 2
    )


def test_stop_drains_open_batch(ch_db, kafka, topics, group_id):
    # A batch that is never due by size or time is still inserted and committed by stop().
    sink = start_sink(ch_db, kafka, topics, group_id, policy=BatchPolicy(max_rows=10**6, max_wait=3600))
    try:
        produce(
            kafka.bootstrap,
            [(topics.events, k.encode(), b.SerializeToString()) for k, b in event_batches(500)],
        )
        wait_for(lambda: sink._batch.records >= 5, what="records read")
        assert ch_db.count("events") == 0
    finally:
        sink.stop()
    assert ch_db.count("events", final=True) == 500
    # Committed: a second sink of the group reads nothing again.
    sink2 = start_sink(ch_db, kafka, topics, group_id)
    try:
        time.sleep(5)
    finally:
        sink2.stop()
    assert ch_db.count("events") == 500
