"""EdgeProducer direct to a real broker: N events arrive exactly once, one record per classroom."""

from __future__ import annotations

import collections

import pytest

from classtrace.v1 import events_pb2 as pb
from producers.sdk import EdgeProducer
from producers.transport.kafka import KafkaTransport
from tests.helpers.ingest_helpers import make_topics, read_events, read_records

pytestmark = pytest.mark.integration


def observations(edge: EdgeProducer, device: str, n: int) -> list[pb.Event]:
    out = []
    for i in range(n):
        ev = edge.event(device, pb.DEVICE_KIND_CAMERA, lesson_id="les-1")
        ev.observation.present = 30
        ev.observation.attentive = i % 30
        out.append(ev)
    return out


def test_direct_to_kafka_exactly_once(kafka, tmp_path):
    topics = make_topics(kafka.bootstrap)
    transport = KafkaTransport(kafka.bootstrap, topic=topics.events)
    sent: list[str] = []
    with EdgeProducer("sch-1", "room-1", transport, spool=tmp_path / "s.db", pseudonym_key=b"k") as edge:
        for _ in range(15):
            sent += edge.send_events(observations(edge, "cam-1", 100) + observations(edge, "cam-2", 50))
        edge.heartbeat("cam-1", pb.DEVICE_KIND_CAMERA, interval_s=10)
        edge.flush()  # the background sender may have sent most already
        assert (edge.depth, edge.stats().delivered) == (0, 2251)
    got = read_events(kafka.bootstrap, topics.events)
    ids = [e.event_id for e in got]
    assert len(ids) == len(set(ids)) == 2251 and set(sent) <= set(ids)
    seqs = collections.defaultdict(list)
    for e in got:
        seqs[e.device_id].append(e.seq)
    assert sorted(seqs["cam-2"]) == list(range(1, 751))
    assert sorted(seqs["cam-1"]) == list(range(1, 1502))
    records = read_records(kafka.bootstrap, topics.events)
    assert {key for key, _ in records} == {b"sch-1/room-1"}  # classtrace.identity.room_key
    assert len(records) < 2251 / 100  # batches, not single events
