"""Erasure on the real broker and chDB (docs/ERASURE.md): gone from every table, and a replay from
offset 0 into a fresh database does not bring the person back; everyone else stays exactly as is."""

from __future__ import annotations

import time
import uuid

import pytest

from classtrace.erasure import Erasure, publish_erasure
from classtrace.identity import room_key
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from sinks.batcher import BatchPolicy, SinkTopics
from sinks.service import SinkService
from tests.helpers.kafka_io import produce, wait_for
from tests.helpers.lessons import recorded_lesson
from tests.helpers.sinkdata import lesson_summary

pytestmark = pytest.mark.integration

SCHOOL = "sch-0001"
LESSON = recorded_lesson(seed=17, school=SCHOOL)
STUDENTS = sorted({e.trace.student_id for e in LESSON if e.WhichOneof("payload") == "trace"})
TEACHER = "t-0042"


@pytest.fixture
def topics(topic_factory):
    return SinkTopics(
        events=topic_factory(partitions=2, prefix="events"),
        metrics=topic_factory(partitions=1, prefix="metrics"),
        deadletter=topic_factory(partitions=1, prefix="dl"),
        erasures=topic_factory(partitions=1, prefix="erasures"),
    )


def start_sink(db, kafka, topics):
    sink = SinkService(
        db.client, kafka.bootstrap, {}, database=db.database, group=f"sink-{uuid.uuid4().hex[:8]}",
        topics=topics, policy=BatchPolicy(max_rows=500, max_wait=0.2),
    )  # fmt: skip
    sink.start()
    return sink


def feed(kafka, topics) -> None:
    key = room_key(SCHOOL, "room-101").encode()
    items = []
    for i in range(0, len(LESSON), 40):
        batch = pb.EventBatch(events=LESSON[i : i + 40])
        items.append((topics.events, key, batch.SerializeToString()))
    summary = lesson_summary("lesson-0001", school=SCHOOL, classroom="room-101")
    summary.teacher_id = TEACHER
    items.append((topics.metrics, key, ppb.MetricBatch(summaries=[summary]).SerializeToString()))
    produce(kafka.bootstrap, items)


def per_student(db) -> dict[str, int]:
    rows = db.client.query(
        f"SELECT student_id, count() FROM {db.database}.events FINAL"
        " WHERE student_id != '' GROUP BY student_id"
    ).result_rows
    return {s: int(n) for s, n in rows}


def teacher_ids(db) -> set[str]:
    q = db.client.query
    events = {r[0] for r in q(f"SELECT DISTINCT teacher_id FROM {db.database}.events").result_rows}
    lessons = {r[0] for r in q(f"SELECT DISTINCT teacher_id FROM {db.database}.lesson_summary").result_rows}
    return events | lessons


def test_erase_a_student_and_a_teacher_then_replay_into_a_fresh_database(ch_db, ch_db_factory, kafka, topics):
    feed(kafka, topics)
    sink = start_sink(ch_db, kafka, topics)
    try:
        wait_for(lambda: ch_db.count("events", final=True) == len(LESSON), what="every event")
        wait_for(lambda: ch_db.count("lesson_summary") == 1, what="the summary")
        before = per_student(ch_db)
        gone = STUDENTS[2]
        assert before[gone] > 0 and TEACHER in teacher_ids(ch_db)
        now_ms = int(time.time() * 1000)
        student = Erasure.new("student", SCHOOL, gone, now_ms)
        teacher = Erasure.new("teacher", SCHOOL, TEACHER, now_ms)
        for erasure in (student, teacher):
            publish_erasure(kafka.bootstrap, topics.erasures, erasure)
        wait_for(lambda: ch_db.count("erasures", final=True) == 2, what="two audit rows")
    finally:
        sink.stop()
    assert sink.failure is None

    after = per_student(ch_db)
    assert gone not in after
    assert after == {s: n for s, n in before.items() if s != gone}  # everyone else unchanged
    assert teacher_ids(ch_db) <= {""}
    audit = ch_db.client.query(
        "SELECT kind, school_id, subject_sha256, rows_deleted, rows_blanked"
        f" FROM {ch_db.database}.erasures FINAL ORDER BY kind"
    ).result_rows
    assert audit == [
        ("student", SCHOOL, student.subject, before[gone], 0),
        ("teacher", SCHOOL, teacher.subject, 0, audit[1][4]),
    ]
    assert audit[1][4] > 0
    assert not _anywhere(ch_db, gone) and not _anywhere(ch_db, TEACHER)

    # A replay of every topic from offset 0 into a fresh database, with the ledger in place.
    fresh = ch_db_factory()
    replay = start_sink(fresh, kafka, topics)
    try:
        wait_for(
            lambda: fresh.count("events", final=True) == len(LESSON) - before[gone],
            what="the replayed events",
        )
        wait_for(lambda: fresh.count("lesson_summary") == 1, what="the replayed summary")
    finally:
        replay.stop()
    assert per_student(fresh) == after
    assert teacher_ids(fresh) <= {""}
    assert not _anywhere(fresh, gone) and not _anywhere(fresh, TEACHER)
    # The replay ran the two erasures against the new store too (nothing was left to remove).
    assert fresh.count("erasures", final=True) == 2


def _anywhere(db, needle: str) -> bool:
    """True if any String column of any table of ``db`` holds ``needle``."""
    columns = db.client.query(
        "SELECT table, name FROM system.columns WHERE database = %(db)s AND type LIKE '%%String%%'"
        " AND table NOT LIKE '.inner%%'",
        parameters={"db": db.database},
    ).result_rows
    for table, column in columns:
        found = db.client.command(
            f"SELECT count() FROM {db.database}.`{table}` WHERE position(toString(`{column}`), %(n)s) > 0",
            parameters={"n": needle},
        )
        if int(found):
            return True
    return False


def test_a_forged_erasure_erases_nothing(kafka, topic_factory):
    """On the embedded broker anyone on the host can write the ledger: only signed requests count."""
    from classtrace.erasure import ErasureFollower
    from classtrace.signing import RecordKey, new_key_text

    topic = topic_factory(partitions=1, prefix="erasures")
    key = RecordKey.parse(new_key_text())
    now_ms = int(time.time() * 1000)
    forged = Erasure.new("student", SCHOOL, STUDENTS[0], now_ms)
    signed = Erasure.new("student", SCHOOL, STUDENTS[1], now_ms)
    publish_erasure(kafka.bootstrap, topic, forged)
    publish_erasure(kafka.bootstrap, topic, signed, record_key=key)
    follower = ErasureFollower(kafka.bootstrap, topic, record_key=key)
    try:
        known = follower.start()
    finally:
        follower.stop()
    assert [e.erasure_id for e in known] == [signed.erasure_id]
