"""On Tansu: a record written without the stack's key mints no device, no viewer (issue 17)."""

from __future__ import annotations

import pytest

from classtrace.kafka import make_producer
from classtrace.signing import RecordKey, new_key_text
from classtrace.tokens import new_token, token_hash
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from producers.registry import read_registrations, register_device
from readers.dashboard.viewers import Viewer, ViewerRegistry, add_viewer, list_viewers

pytestmark = pytest.mark.integration

KEY = RecordKey.parse(new_key_text())


def forge(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    """What anyone who reaches the broker can do: produce, without the key."""
    producer = make_producer(bootstrap)
    producer.produce(topic, value, key=key)
    assert producer.flush(10) == 0


def test_a_forged_device_registration_grants_no_token(kafka, topic_factory, caplog):
    topic = topic_factory()
    forged = ppb.DeviceRegistration(
        school_id="sch-x", classroom_id="r1", device_id="evil", device_kind=pb.DEVICE_KIND_CAMERA,
        token_sha256=token_hash(new_token()),
    )  # fmt: skip
    forge(kafka.bootstrap, topic, b"sch-x/evil", forged.SerializeToString())
    _token, real = register_device(
        kafka.bootstrap,
        {},
        school_id="sch-1",
        classroom_id="r1",
        device_id="cam",
        topic=topic,
        record_key=KEY,
    )
    found = read_registrations(kafka.bootstrap, {}, topic, record_key=KEY)
    assert list(found) == ["sch-1/cam"]
    assert found["sch-1/cam"].token_sha256 == real.token_sha256
    assert "unsigned record" in caplog.text


def test_a_forged_viewer_is_not_admitted(kafka, topic_factory):
    topic = topic_factory()
    token = new_token("ctv_")
    evil = Viewer("v_evil", "", token_hash(token), "2026-01-01T00:00:00+00:00")
    forge(kafka.bootstrap, topic, b"v_evil", evil.encode())
    viewer, own = add_viewer(kafka.bootstrap, {}, "sch-1", topic=topic, record_key=KEY)
    assert [v.viewer_id for v in list_viewers(kafka.bootstrap, {}, topic, record_key=KEY)] == [
        viewer.viewer_id
    ]
    registry = ViewerRegistry()
    registry.follow(kafka.bootstrap, {}, topic, record_key=KEY)
    try:
        assert registry.lookup(own, wait=20.0) == viewer
        assert registry.lookup(token, wait=0.0) is None
    finally:
        registry.stop()
