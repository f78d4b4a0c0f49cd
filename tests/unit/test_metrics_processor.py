"""The processor end to end without Kafka: order, duplicates and restarts never change a metric."""

from __future__ import annotations

import hashlib
import random
import time

import pytest

from classtrace.v1 import events_pb2 as pb
from stream_processors.lesson_state import summary_fingerprint
from stream_processors.processor import Processor, ProcessorConfig, Record
from tests.helpers.lessons import chunks, recorded_lesson
from tests.helpers.worker_tables import DictTable, Sink


def make(tables=None, sink=None):
    tables = tables or (DictTable(), DictTable(), DictTable())
    sink = sink or Sink()
    return Processor(*tables, sink, ProcessorConfig(summary_interval_s=0.0)), tables, sink


def records(values: list[bytes], key: bytes = b"sch-0001/room-101") -> list[Record]:
    return [Record("classtrace.events.v1", 0, i, key, v) for i, v in enumerate(values)]


def run(events: list[pb.Event], size: int = 25):
    proc, _tables, sink = make()
    for rec in records(chunks(events, size)):
        proc.process_records([rec])
    proc.tick()
    return proc, sink


LESSON = recorded_lesson(seed=11)


@pytest.fixture(scope="module")
def reference():
    proc, sink = run(LESSON)
    assert proc.stats.dead_letters == 0
    return sink


def test_reference_summary_is_plausible(reference):
    s = reference.final_summary()
    assert s.st_samples == 20  # 10 minutes / 30 s
    assert len(s.st_codes) == 20 and set(s.st_codes) <= {"S", "T"}
    # docs/DESIGN.md §7's rule, read off the figures the summary reports
    rt, ch = s.st_rt, s.st_ch
    assert s.teaching_mode == (
        "practice" if rt <= 0.3 else "lecture" if rt >= 0.7 else "dialogue" if ch >= 0.4 else "mixed"
    )
    assert s.st_rt == s.st_codes.count("T") / 20
    assert 0.5 < s.attention_rate <= 1.0
    assert s.participation_rate == pytest.approx(30 / 40, abs=0.2)
    assert s.answers > 0 and 0 < s.answer_accuracy <= 1
    assert s.teacher_id == "t-0042" and s.enrolled == 40 and s.final


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shuffled_and_duplicated_input_gives_identical_results(reference, seed):
    rng = random.Random(seed)
    events = list(LESSON) + rng.sample(LESSON, len(LESSON) // 3)  # a third re-delivered
    rng.shuffle(events)
    _, sink = run(events, size=rng.randint(7, 60))
    assert summary_fingerprint(sink.final_summary()) == summary_fingerprint(reference.final_summary())
    assert sink.points() == reference.points()


def test_restart_with_redelivery_gives_identical_results(reference):
    values = chunks(LESSON, 20)
    tables = (DictTable(), DictTable(), DictTable())
    first, _, sink = make(tables)
    for rec in records(values)[:12]:
        first.process_records([rec])
    # the worker dies; offsets were committed up to record 8: records 8.. come again
    second, _, _ = make(tables, sink)
    for rec in records(values)[8:]:
        second.process_records([rec])
    assert summary_fingerprint(sink.final_summary()) == summary_fingerprint(reference.final_summary())
    assert sink.points() == reference.points()


def test_table_writes_are_per_batch_not_per_event():
    proc, tables, _ = make()
    proc.process_records(records(chunks(LESSON, 100)))
    lessons, windows, devices = tables
    assert lessons.writes == 1
    assert devices.writes == 1
    assert windows.writes == len(windows.data)  # each window once


def test_unreadable_records_are_dead_lettered_and_the_stream_goes_on(reference):
    # Events on the topic are trusted (every writer validated them, docs/DESIGN.md §9): the
    # worker only guards against what it cannot read — bytes that are no EventBatch, a record
    # without a key — and goes on counting the rest exactly.
    values = [b"\xff\x00garbage", *chunks(LESSON, 50)]
    proc, _tables, sink = make()
    proc.process_records(records(values))
    proc.process_records([Record("classtrace.events.v1", 0, 99, None, values[1])])
    errors = [d.error for d in sink.dead]
    assert len(errors) == 2
    assert "EventBatch" in errors[0] and sink.dead[0].offset == 0
    assert "no key" in errors[1] and sink.dead[1].offset == 99
    assert all(d.source == "worker" for d in sink.dead)
    garbage = sink.dead[0]  # undecodable bytes: a digest and a length, never the bytes (issue 17)
    assert garbage.raw == b"" and garbage.raw_length == len(values[0])
    assert garbage.raw_sha256 == hashlib.sha256(values[0]).hexdigest()
    assert summary_fingerprint(sink.final_summary()) == summary_fingerprint(reference.final_summary())


def test_device_offline_alert_once(reference):
    clock = [0.0]
    hb = [e for e in recorded_lesson(seed=5) if e.WhichOneof("payload") == "heartbeat"][-1]
    now_s = hb.occurred_at.seconds
    clock[0] = now_s
    sink = Sink()
    proc = Processor(DictTable(), DictTable(), DictTable(), sink, clock=lambda: clock[0])
    proc.process_records(records([pb.EventBatch(events=[hb]).SerializeToString()]))
    status = [d for b in sink.batches for d in b.devices]
    assert len(status) == 1 and not status[0].offline and status[0].interval_s == 30
    clock[0] = now_s + 90  # exactly 3 × 30 s: not yet
    proc.tick()
    assert sum(len(b.devices) for b in sink.batches) == 1
    clock[0] = now_s + 91
    proc.tick()
    proc.tick()
    status = [d for b in sink.batches for d in b.devices]
    assert len(status) == 2 and status[1].offline and status[1].device_id == hb.device_id


def test_live_summary_is_throttled_and_versions_increase():
    clock = [time.time()]
    sink = Sink()
    proc = Processor(
        DictTable(),
        DictTable(),
        DictTable(),
        sink,
        ProcessorConfig(summary_interval_s=1.0),
        clock=lambda: clock[0],
    )
    values = chunks(LESSON[:-1], 10)  # without ENDED
    for rec in records(values):
        proc.process_records([rec])
        clock[0] += 0.1
    summaries = [s for b in sink.batches for s in b.summaries]
    assert 1 <= len(summaries) <= len(values) * 0.1 + 2
    assert proc.stats.dead_letters == 0
    assert not any(s.final for s in summaries)
    proc.process_records(records(chunks(LESSON[-1:], 1)))
    summaries = [s for b in sink.batches for s in b.summaries]
    assert summaries[-1].final  # the final one is not throttled
    versions = [s.version for s in summaries]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


def test_windows_of_a_lesson_hours_in_the_past_are_emitted():
    """Lateness is event time: a backfill (or `up --simulate`, anchored in the past) keeps its windows."""
    start = (int(time.time()) - 3 * 3600) * 1000  # three hours ago: past the 30 min window retention
    lesson = recorded_lesson(seed=5, start_ms=start)
    proc, sink = run(lesson)
    points = sink.points()
    assert proc.stats.late_dropped == 0
    assert {metric for _start, metric in points} >= {"events", "attention_rate"}
    assert sum(v for (_s, m), v in points.items() if m == "events") == len(lesson)


def test_an_event_far_behind_its_classrooms_latest_is_not_given_a_partial_window():
    now_ms = int(time.time()) * 1000
    lesson = recorded_lesson(seed=6, start_ms=now_ms - 3 * 3600 * 1000, minutes=10)
    later = recorded_lesson(seed=7, start_ms=now_ms - 3600 * 1000, minutes=10, lesson="lesson-0002")
    proc, _tables, _sink = make()
    proc.process_records(records(chunks(later, 25)))
    proc.tick()
    before = proc.stats.late_dropped
    proc.process_records(records(chunks(lesson[:5], 5)))
    assert proc.stats.late_dropped - before == 5


def test_a_lesson_without_frames_or_answers_reports_no_value_not_zero():
    import math

    quiet = [e for e in LESSON if e.WhichOneof("payload") not in ("observation", "trace")]
    _proc, sink = run(quiet)
    summary = sink.final_summary()
    assert math.isnan(summary.attention_rate) and math.isnan(summary.answer_accuracy)
    assert summary.answers == 0 and summary.participation_rate == 0.0


def test_two_schools_with_the_same_room_and_lesson_id_keep_their_own_lessons():
    """Room numbers and lesson ids repeat across schools: each school's lesson is its own.

    Both schools run "lesson-0001" in "room-101" at the same time; their records interleave on
    one partition. Each school's summary and window points equal what it gets alone.
    """
    start = (int(time.time()) - 900) * 1000
    a = recorded_lesson(seed=11, start_ms=start, school="sch-a")
    b = recorded_lesson(seed=23, start_ms=start, school="sch-b")
    alone = {}
    for school, events in (("sch-a", a), ("sch-b", b)):
        proc, _tables, sink = make()
        proc.process_records(records(chunks(events, 25), key=f"{school}/room-101".encode()))
        proc.tick()
        alone[school] = (sink.final_summary(), sink.points())
    proc, _tables, sink = make()
    recs_a = records(chunks(a, 25), key=b"sch-a/room-101")
    recs_b = records(chunks(b, 25), key=b"sch-b/room-101")
    for pair in zip(recs_a, recs_b, strict=False):
        proc.process_records(list(pair))
    proc.tick()
    by_school = {}
    for batch in sink.batches:
        for s in batch.summaries:
            if s.final and s.version >= by_school.get(s.school_id, s).version:
                by_school[s.school_id] = s
    assert set(by_school) == {"sch-a", "sch-b"}
    for school, (summary, points) in alone.items():
        assert summary_fingerprint(by_school[school]) == summary_fingerprint(summary)
        assert sink.points(school) == points
    assert alone["sch-a"][0].st_codes != alone["sch-b"][0].st_codes  # two different lessons
    assert set(sink.keys) == {b"sch-a/room-101", b"sch-b/room-101"}


def test_a_record_keyed_by_the_classroom_alone_takes_its_school_from_its_events(reference):
    """Records written before school/classroom keys (a topic being upgraded) still count once."""
    proc, _tables, sink = make()
    for rec in records(chunks(LESSON, 25), key=b"room-101"):
        proc.process_records([rec])
    proc.tick()
    assert summary_fingerprint(sink.final_summary()) == summary_fingerprint(reference.final_summary())
    assert proc.stats.dead_letters == 0


def test_a_restarted_worker_sends_the_summaries_its_predecessor_held_back():
    """A summary throttled when the worker died is sent by the next one, though the lesson gets
    no further event: the changelog had the counts, ClickHouse must get them too."""
    tables = (DictTable(), DictTable(), DictTable())
    first = Sink()
    config = ProcessorConfig(summary_interval_s=3600.0)  # after the first, every summary waits
    events = [e for e in LESSON if not (e.WhichOneof("payload") == "lesson" and e.lesson.phase == 2)]
    before = Processor(*tables, first, config)
    for rec in records(chunks(events, 25)):  # one batch each: the first summary goes, then all wait
        before.process_records([rec])
    sent_before = max((s for b in first.batches for s in b.summaries), key=lambda s: s.version)
    # killed here: the lesson's latest counts are in the tables, its latest summary was not sent
    after_sink = Sink()
    after = Processor(*tables, after_sink, config)
    other = recorded_lesson(seed=3, classroom="room-202", minutes=1)[:5]
    after.process_records(records(chunks(other, 5), key=b"sch-0001/room-202"))
    after.tick()
    resent = [s for b in after_sink.batches for s in b.summaries if s.classroom_id == "room-101"]
    assert len(resent) == 1
    assert resent[0].hand_raises > sent_before.hand_raises or resent[0].answers > sent_before.answers
    # it is what an uninterrupted worker ends with for the same events
    whole, _t, whole_sink = make()
    whole.process_records(records(chunks(events, 25)))
    whole.tick()
    latest = max((s for b in whole_sink.batches for s in b.summaries), key=lambda s: s.version)
    assert summary_fingerprint(resent[0]) == summary_fingerprint(latest)
