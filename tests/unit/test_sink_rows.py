"""Records → columnar rows: every payload kind, trusted events, undecodable records, offsets."""

from __future__ import annotations

import hashlib
import math
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from classtrace.schema import EVENT_INSERT_COLUMNS
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from sinks.batcher import Batch, BatchPolicy, SinkTopics
from sinks.metrics import sink_metrics
from sinks.rows import add_event_batch, add_metric_batch, new_block
from tests.helpers import strategies
from tests.helpers.sinkdata import event_batches, lesson_summary

TOPICS = SinkTopics("ev", "me", "dl")


def test_event_columns_follow_the_schema_contract():
    assert tuple(new_block("events").columns) == EVENT_INSERT_COLUMNS


def test_every_kind_is_flattened():
    ((_, batch),) = event_batches(5, per_batch=5)
    events = new_block("events")
    assert add_event_batch(batch, ("ev", 0, 3), time.time(), events) == 5
    rows = {events.row(i)["kind"]: events.row(i) for i in range(5)}
    assert rows["lesson"]["lesson_phase"] == "STARTED" and rows["lesson"]["enrolled"] == 40
    assert rows["teaching"]["teaching_kind"] == "LECTURING" and rows["teaching"]["duration_ms"] == 30_000
    assert rows["observation"]["present"] == 40 and set(rows["observation"]["behavior_counts"]) == {
        "HAND_RAISING"
    }
    assert rows["trace"]["verb"] == "ANSWERED" and rows["trace"]["correct"] in (True, False)
    assert rows["trace"]["context"] == "IN_CLASS" and rows["trace"]["knowledge_points"] == ["kp.fractions"]
    assert rows["heartbeat"]["interval_s"] == 30 and rows["heartbeat"]["firmware"] == "1.2.3"
    # other payloads' columns keep their defaults
    assert rows["heartbeat"]["correct"] is None and rows["heartbeat"]["verb"] == ""
    assert rows["lesson"]["device_kind"] == "TEACHER_APP"
    assert all(len(col) == 5 for col in events.columns.values())
    assert events.sources == [("ev", 0, 3)] * 5


@settings(max_examples=50, deadline=None)
@given(strategies.event_batches(now=strategies.NOW))
def test_valid_batches_map_one_row_per_event(batch):
    events = new_block("events")
    add_event_batch(batch, ("ev", 0, 0), strategies.NOW, events)
    assert len(events) == len(batch.events)
    assert events.columns["event_id"] == [e.event_id for e in batch.events]
    assert len({len(c) for c in events.columns.values()}) == 1


@settings(max_examples=50, deadline=None)
@given(strategies.invalid_events(now=strategies.NOW))
def test_events_are_not_judged_again_at_the_sink(case):
    # The topic is trusted (the gateway and the SDK validate): an event that breaks a rule is
    # flattened like any other, and whatever ClickHouse refuses of it the writer dead-letters.
    event, _field = case
    events = new_block("events")
    assert add_event_batch(pb.EventBatch(events=[event]), ("ev", 2, 9), strategies.NOW, events) == 1
    assert events.columns["event_id"] == [event.event_id] and events.messages == [event]


def test_enum_values_without_a_name_are_stored_as_empty_strings():
    ((_, batch),) = event_batches(5, per_batch=5)
    by_kind = {e.WhichOneof("payload"): e for e in batch.events}
    by_kind["trace"].trace.verb = 99
    by_kind["trace"].trace.context = 98
    by_kind["teaching"].teaching.kind = 97
    by_kind["lesson"].lesson.phase = 96
    by_kind["heartbeat"].device_kind = 95
    by_kind["observation"].observation.counts[0].behavior = 94
    by_kind["observation"].ClearField("observation")  # no payload at all
    events = new_block("events")
    add_event_batch(batch, ("ev", 0, 0), time.time(), events)
    rows = [events.row(i) for i in range(5)]
    assert {r["verb"] for r in rows} == {r["context"] for r in rows} == {""}
    assert {r["teaching_kind"] for r in rows} == {r["lesson_phase"] for r in rows} == {""}
    assert "" in {r["device_kind"] for r in rows} and "" in {r["kind"] for r in rows}


def test_received_at_is_stamped_when_missing():
    ((_, batch),) = event_batches(2, per_batch=2)
    batch.events[1].received_at.seconds = 1_700_000_000
    events = new_block("events")
    now = time.time()
    add_event_batch(batch, ("ev", 0, 0), now, events)
    assert events.columns["received_at"] == [int(now * 1000), 1_700_000_000_000]


def test_summary_nulls():
    s = lesson_summary("L1")
    s.attention_rate = math.nan
    s.answers = 0
    s.ClearField("ended_at")
    t = lesson_summary("L2")
    t.enrolled = 0
    summaries, points = new_block("lesson_summary"), new_block("metric_points")
    mb = ppb.MetricBatch(summaries=[s, t], points=[ppb.MetricUpdate(metric="attention_rate", value=0.5)])
    assert add_metric_batch(mb, ("me", 0, 1), summaries, points) == 3
    a, b = summaries.row(0), summaries.row(1)
    assert (a["attention_rate"], a["answer_accuracy"], a["ended_at"]) == (None, None, None)
    assert a["participation_rate"] == 0.9
    assert b["participation_rate"] is None and b["answer_accuracy"] == 0.75
    assert points.row(0)["metric"] == "attention_rate"


def test_batch_tracks_offsets_and_dead_letters_undecodable_records():
    batch = Batch(TOPICS, sink_metrics())
    ((_, eb),) = event_batches(3, per_batch=3)
    batch.add("ev", 1, 10, eb.SerializeToString())
    batch.add("ev", 1, 11, b"\xff\x00garbage")
    batch.add("ev", 0, 4, eb.SerializeToString())
    batch.add("dl", 0, 0, ppb.DeadLetter(source="gateway", error="e").SerializeToString())
    assert batch.commit_offsets() == [("ev", 1, 12), ("ev", 0, 5), ("dl", 0, 1)]
    assert len(batch.events) == len(batch.event_rows()) == 6
    assert len(batch.blocks["dead_letters"]) == 2
    garbage = batch.blocks["dead_letters"].row(0)  # a digest and a length, not the bytes
    assert (garbage["raw"], garbage["raw_length"]) == (b"", len(b"\xff\x00garbage"))
    assert garbage["raw_sha256"] == hashlib.sha256(b"\xff\x00garbage").hexdigest()
    assert "offset=11" in batch.blocks["dead_letters"].row(0)["error"]


def test_batch_due_by_rows_or_age():
    batch = Batch(TOPICS, sink_metrics())
    policy = BatchPolicy(max_rows=10, max_wait=5.0)
    assert not batch.due(policy)
    ((_, eb),) = event_batches(4, per_batch=4)
    batch.add("ev", 0, 0, eb.SerializeToString())
    assert not batch.due(policy)
    assert batch.due(policy, now=batch.opened + 5.0)
    batch.add("ev", 0, 1, eb.SerializeToString())
    batch.add("ev", 0, 2, eb.SerializeToString())
    assert batch.due(policy)


def test_a_record_that_decodes_is_kept_as_it_is_without_validation():
    ((_, batch),) = event_batches(4, per_batch=4)
    batch.events[1].event_id = "not-a-uuid"  # the writers validate; the sink does not judge again
    value = batch.SerializeToString()
    b = Batch(TOPICS, sink_metrics())
    b.add("ev", 0, 7, value)
    assert len(b.events) == 4 and b.events.parts == [value]  # the record's own bytes
    assert len(b.blocks["dead_letters"]) == 0


def test_the_row_fallback_writes_every_event_of_the_batch():
    ((_, batch),) = event_batches(3, per_batch=3)
    b = Batch(TOPICS, sink_metrics())
    b.add("ev", 0, 0, batch.SerializeToString())
    later = time.time() + 8 * 86_400  # the protobuf insert was refused after a week of outage
    rows = b.event_rows(later)
    assert rows.columns["event_id"] == [e.event_id for e in batch.events]
    assert len(b.blocks["dead_letters"]) == 0


_RECORD = next(iter(event_batches(3, per_batch=3)))[1].SerializeToString()


def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(_RECORD)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.composite(_mutated)()))
def test_any_bytes_become_events_or_a_dead_letter_never_a_crash(value):
    b = Batch(TOPICS, sink_metrics())
    b.add("ev", 3, 42, value)
    try:
        n = len(pb.EventBatch.FromString(value).events)
    except Exception:  # upb: not an EventBatch
        n = -1
    if n < 0:
        (row,) = (b.blocks["dead_letters"].row(i) for i in range(len(b.blocks["dead_letters"])))
        assert (row["topic"], row["partition"], row["offset"], row["raw"]) == ("ev", 3, 42, b"")
        assert (row["raw_sha256"], row["raw_length"]) == (hashlib.sha256(value).hexdigest(), len(value))
        assert len(b.events) == 0
    else:
        assert len(b.blocks["dead_letters"]) == 0 and len(b.events) == n
        assert len(b.event_rows()) == n  # the row fallback takes whatever decoded
    assert b.commit_offsets() == [("ev", 3, 43)]


def test_the_sink_command_defaults_are_the_batch_policy_defaults():
    from sinks.cli import sink as sink_cli

    assert (BatchPolicy().max_rows, BatchPolicy().max_wait) == (sink_cli.MAX_ROWS, sink_cli.MAX_WAIT)
