"""Device status and alerts are stored (issue 18): the worker's records, signed, through the real
broker into chDB by the sink — offline then online rows, alerts raised then cleared."""

from __future__ import annotations

import time
import uuid

import pytest

from classtrace.kafka import make_producer
from classtrace.signing import RecordKey, new_key_text
from classtrace.v1 import events_pb2 as pb
from sinks.batcher import BatchPolicy, SinkTopics
from sinks.service import SinkService
from stream_processors.processor import Processor, Record
from tests.helpers.kafka_io import wait_for
from tests.helpers.worker_tables import DictTable

pytestmark = pytest.mark.integration

SCHOOL, ROOM = "sch-int", "room-9"
KEY = f"{SCHOOL}/{ROOM}".encode()


class SignedOutputs:
    """The worker's outputs as TopicOutputs sends them (signed), to this test's topics."""

    def __init__(self, topics: SinkTopics, record_key: RecordKey) -> None:
        self.topics, self.record_key = topics, record_key
        self.records: list[tuple[str, bytes, bytes]] = []

    def metrics(self, key: bytes, value: bytes) -> None:
        self.records.append((self.topics.metrics, key, value))

    def alerts(self, key: bytes, value: bytes) -> None:
        self.records.append((self.topics.alerts, key, value))

    def dead_letter(self, key: bytes | None, value: bytes) -> None:
        self.records.append((self.topics.deadletter, key or b"", value))

    def flush_to(self, bootstrap: str) -> None:
        producer = make_producer(bootstrap)
        for topic, key, value in self.records:
            producer.produce(topic, value=value, key=key, headers=self.record_key.headers(topic, key, value))
        assert producer.flush(30) == 0
        self.records.clear()


def _event(n: int, at_ms: int, device: str, lesson: str = "") -> pb.Event:
    event = pb.Event(
        event_id=str(uuid.UUID(int=n, version=4)),
        school_id=SCHOOL,
        classroom_id=ROOM,
        device_id=device,
        lesson_id=lesson,
        seq=n,
        device_kind=pb.DEVICE_KIND_CAMERA,
    )
    event.occurred_at.FromMilliseconds(at_ms)
    event.received_at.FromMilliseconds(at_ms)
    return event


def test_silent_device_and_inattentive_lesson_are_stored(kafka, topic_factory, ch_db, group_id):
    record_key = RecordKey.parse(new_key_text())
    topics = SinkTopics(
        events=topic_factory(prefix="ev"),
        metrics=topic_factory(prefix="me"),
        deadletter=topic_factory(prefix="dl"),
        access=topic_factory(prefix="ac"),
        alerts=topic_factory(prefix="al"),
    )
    out = SignedOutputs(topics, record_key)
    t0 = (int(time.time()) - 3600) * 1000  # an hour ago: well inside every retention
    clock = [t0]
    proc = Processor(DictTable(), DictTable(), DictTable(), out, clock=lambda: clock[0] / 1000)
    offset = iter(range(1_000))

    def send(*events: pb.Event) -> None:
        value = pb.EventBatch(events=list(events)).SerializeToString()
        proc.process_records([Record(topics.events, 0, next(offset), KEY, value)])

    beat = _event(1, t0, "cam")
    beat.heartbeat.interval_s = 10
    send(beat)
    clock[0] = t0 + 31_000  # silent for more than 3 × 10 s
    proc.tick()
    clock[0] = t0 + 90_000
    back = _event(2, clock[0], "cam")
    back.heartbeat.interval_s = 10
    send(back)
    start = _event(3, clock[0], "app", "L-int")
    start.lesson.phase = pb.LessonLifecycle.PHASE_STARTED
    low = _event(4, clock[0] + 1_000, "cam", "L-int")
    low.observation.present, low.observation.attentive = 40, 10
    send(start, low)
    out.records *= 2  # every record delivered twice: the tables hold each change once
    out.flush_to(kafka.bootstrap)

    sink = SinkService(
        ch_db.client,
        kafka.bootstrap,
        {},
        database=ch_db.database,
        group=group_id,
        topics=topics,
        policy=BatchPolicy(max_rows=1_000, max_wait=0.3),
        record_key=record_key,
    )
    sink.start()
    try:
        wait_for(lambda: ch_db.count("device_status", final=True) >= 3, what="3 device_status rows")
        wait_for(lambda: ch_db.count("alerts", final=True) >= 2, what="2 alerts")
    finally:
        sink.stop()
    assert sink.failure is None
    q, db = ch_db.client.query, ch_db.database
    rows = q(
        f"SELECT device_id, state, toUnixTimestamp64Milli(at) FROM {db}.device_status FINAL ORDER BY at"
    ).result_rows
    assert rows == [("cam", "online", t0), ("cam", "offline", t0 + 30_000), ("cam", "online", t0 + 90_000)]
    alerts = q(
        f"SELECT kind, state, device_id, lesson_id, toUnixTimestamp64Milli(raised_at),"
        f" toUnixTimestamp64Milli(cleared_at), threshold FROM {db}.alerts FINAL ORDER BY kind"
    ).result_rows
    assert alerts == [
        ("device_offline", "cleared", "cam", "", t0 + 30_000, t0 + 90_000, 30.0),
        ("low_attention", "raised", "", "L-int", t0 + 91_000, None, 0.6),
    ]
    assert q(f"SELECT count() FROM {db}.dead_letters").result_rows[0][0] == 0
