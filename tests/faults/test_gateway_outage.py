"""A gateway that is down for a while: the SDK keeps spooling and retrying, then delivers all."""

from __future__ import annotations

import pytest

from classtrace.broker import free_port
from classtrace.v1 import events_pb2 as pb
from producers.backoff import Backoff
from producers.registry import register_device
from producers.sdk import EdgeProducer
from producers.transport.http import HttpTransport
from tests.helpers.ingest_helpers import gateway_config, make_topics, read_events, running_gateway, wait_for

pytestmark = pytest.mark.faults


def test_gateway_down_then_back_gets_spooled_events(kafka, tmp_path):
    topics = make_topics(kafka.bootstrap)
    token, _ = register_device(
        kafka.bootstrap,
        None,
        school_id="sch-1",
        classroom_id="room-1",
        device_id="cam-1",
        kind=pb.DEVICE_KIND_CAMERA,
        topic=topics.devices,
    )
    port = free_port()
    transport = HttpTransport(f"http://127.0.0.1:{port}", {"cam-1": token}, timeout=2.0)
    edge = EdgeProducer(
        "sch-1",
        "room-1",
        transport,
        spool=tmp_path / "s.db",
        pseudonym_key=b"k",
        backoff=Backoff(base=0.05, cap=0.5),
    )
    sent = []
    for _ in range(5):
        events = []
        for _ in range(100):
            ev = edge.event("cam-1", pb.DEVICE_KIND_CAMERA)
            ev.teaching.kind = pb.TeachingBehavior.KIND_LECTURING
            ev.teaching.duration_ms = 30_000
            events.append(ev)
        sent += edge.send_events(events)
    wait_for(lambda: edge.stats().send_failures >= 3, "the SDK to retry against the dead gateway")
    assert edge.depth == 500  # nothing lost, nothing sent
    edge.heartbeat("cam-1", pb.DEVICE_KIND_CAMERA, interval_s=10)
    with running_gateway(gateway_config(kafka.bootstrap, topics), port=port):
        wait_for(lambda: edge.depth == 0, "the spool to drain into the returned gateway")
    edge.close()
    got = read_events(kafka.bootstrap, topics.events)
    assert sorted(e.event_id for e in got if e.HasField("teaching")) == sorted(sent)
    (heartbeat,) = [e for e in got if e.HasField("heartbeat")]
    assert heartbeat.heartbeat.spool_depth == 500  # it reported the backlog
