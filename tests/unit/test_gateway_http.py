"""POST /v1/events without Kafka: every documented status, tenant binding, stamping, fuzzed bodies."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from classtrace.codec import batch_to_json, decode_batch, encode_batch, ts_to_ns
from classtrace.identity import room_key
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from producers.gateway.app import GatewayConfig, build_app
from producers.gateway.auth import Binding, StaticDirectory
from producers.gateway.ingest import judge
from tests.helpers.gateway_http import TOKEN, FakePublisher, event
from tests.helpers.strategies import NOW, events

# starlette's TestClient warns that it prefers httpx2; httpx is what the project ships.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

BINDING = Binding("sch-A", "room-1", "tab-1", pb.DEVICE_KIND_TABLET)
PB = "application/x-protobuf"


@pytest.fixture
def publisher():
    return FakePublisher()


@pytest.fixture
def client(publisher):
    app = build_app(
        GatewayConfig("unused:9092", events_topic="ev", deadletter_topic="dl"),
        directory=StaticDirectory({TOKEN: BINDING}),
        publisher=publisher,
    )
    with TestClient(app) as c:
        yield c


def post(client, body, ctype=PB, token=TOKEN):
    headers = {"Content-Type": ctype}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/v1/events", content=body, headers=headers)


def test_accepts_protobuf_stamps_received_at_one_record(client, publisher):
    events = [event(), event()]
    events[0].received_at.seconds = 1  # a device's value is ignored
    before = time.time_ns()
    r = post(client, encode_batch(events))
    assert r.status_code == 200 and r.json() == {"accepted": 2, "rejected": []}
    ((topic, value, key),) = publisher.records
    assert (topic, key) == ("ev", room_key("sch-A", "room-1"))
    got = decode_batch(value).events
    assert [e.event_id for e in got] == [e.event_id for e in events]
    assert all(ts_to_ns(e.received_at) >= before - 10**9 for e in got)


def test_accepts_proto3_json(client, publisher):
    body = batch_to_json(pb.EventBatch(events=[event()]))
    r = post(client, body, "application/json; charset=utf-8")
    assert r.json()["accepted"] == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("school_id", "sch-B", "school_id: must be the token's school 'sch-A'"),
        ("classroom_id", "room-2", "classroom_id: must be the token's classroom 'room-1'"),
        ("device_id", "tab-9", "device_id: must be the token's device 'tab-1'"),
        ("device_kind", 99, "device_kind: unknown enum value 99"),
        ("event_id", "not-a-uuid", "event_id: must be a UUID"),
    ],
)
def test_per_event_rejects_are_dead_lettered_never_written(client, publisher, field, value, message):
    good, bad = event(), event(**{field: value})
    r = post(client, encode_batch([bad, good]))
    body = r.json()
    assert r.status_code == 200 and body["accepted"] == 1
    assert body["rejected"][0]["index"] == 0 and body["rejected"][0]["error"].startswith(message)
    (written,) = publisher.on("ev")
    assert [e.event_id for e in decode_batch(written).events] == [good.event_id]
    (letter,) = [ppb.DeadLetter.FromString(v) for v in publisher.on("dl")]
    trusted_id = "" if field == "event_id" else bad.event_id  # only a UUID is kept
    assert (letter.source, letter.event_id, letter.school_id) == ("gateway", trusted_id, "sch-A")
    assert (letter.field, letter.raw) == (field, b"")  # raw only behind CLASSTRACE_DEADLETTER_KEEP_RAW
    assert letter.raw_sha256 == hashlib.sha256(bad.SerializeToString()).hexdigest()
    assert letter.raw_length == bad.ByteSize()
    assert str(value) not in letter.error or isinstance(value, int)  # the sender's value is not stored


def test_future_timestamp_and_raw_student_id_rejected(client, publisher):
    future = event()
    future.occurred_at.seconds = int(time.time()) + 3600
    raw = event()
    raw.trace.student_id = "20230117"
    body = post(client, encode_batch([future, raw])).json()
    assert body["accepted"] == 0 and publisher.on("ev") == []
    errors = [item["error"] for item in body["rejected"]]
    assert "in the future" in errors[0]
    assert errors[1].startswith("trace.student_id: must be a pseudonym") and "20230117" not in errors[1]
    assert all(b"20230117" not in ppb.DeadLetter.FromString(v).error.encode() for v in publisher.on("dl"))


@pytest.mark.parametrize(
    ("token", "ctype", "body", "status", "error"),
    [
        (None, PB, b"", 401, "missing bearer token"),
        ("wrong", PB, b"", 401, "unknown or revoked device token"),
        (TOKEN, "text/plain", b"x", 415, "unsupported content type 'text/plain'"),
        (TOKEN, PB, b"\xff\xff\xff", 400, "undecodable body"),
        (TOKEN, "application/json", b"{not json", 400, "undecodable body: not JSON"),
        (TOKEN, "application/json", b'{"events": [{"deviceKind": "TOASTER"}]}', 400, "undecodable body"),
        (TOKEN, "application/json", b"[]", 400, "undecodable body"),
        (TOKEN, PB, b"\x00" * (1024 * 1024 + 1), 413, "body larger than 1048576 bytes"),
    ],
)
def test_whole_request_errors(client, publisher, token, ctype, body, status, error):
    r = post(client, body, ctype, token)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"].startswith(error)
    assert publisher.records == []
    assert post(client, encode_batch([event()])).status_code == 200  # and it keeps serving


def test_too_many_events(client, publisher):
    r = post(client, encode_batch([event() for _ in range(1001)]))
    assert r.status_code == 413 and "1001 events exceed the limit of 1000" in r.json()["error"]


def test_kafka_failure_is_503_with_retry_after(client, publisher):
    publisher.fail = True
    r = post(client, encode_batch([event()]))
    assert r.status_code == 503 and r.headers["retry-after"] == "1"


def test_empty_batch_writes_nothing(client, publisher):
    assert post(client, b"").json() == {"accepted": 0, "rejected": []}
    assert publisher.records == []


def test_healthz_metrics_openapi(client):
    post(client, encode_batch([event(), event(school_id="sch-B")]))
    assert client.get("/healthz").json() == {"status": "ok", "devices": 1}
    text = client.get("/metrics").text
    assert 'classtrace_gateway_requests_total{status="200"} 1.0' in text
    assert "classtrace_gateway_events_accepted_total 1.0" in text
    assert 'classtrace_gateway_events_rejected_total{reason="school_id"} 1.0' in text
    assert "classtrace_gateway_publish_seconds_bucket" in text
    assert client.get("/openapi.yaml").text.startswith("openapi: 3.")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=2048))
def test_fuzz_random_bytes_never_crash(client, body):
    r = post(client, body)
    assert r.status_code in (200, 400)
    assert isinstance(r.json(), dict)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_event_keys = st.sampled_from(
    ["eventId", "event_id", "schoolId", "deviceKind", "occurredAt", "trace", "heartbeat", "seq", "bogus"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    doc=st.one_of(
        _json_values,
        st.fixed_dictionaries(
            {"events": st.lists(st.dictionaries(_event_keys, _json_values, max_size=5), max_size=3)}
        ),
    )
)
def test_fuzz_random_json_never_crash(client, doc):
    r = post(client, json.dumps(doc).encode(), "application/json")
    assert r.status_code in (200, 400)
    assert isinstance(r.json(), dict)


@settings(max_examples=100, deadline=None)
@given(st.lists(events(now=NOW), min_size=1, max_size=20))
def test_judge_publishes_the_stamped_request(batch):
    """A request whose every event is valid and the token's becomes one record: the same events,
    each with received_at = the receiver clock (the device's value overwritten, zeros included)."""
    for ev in batch:
        ev.school_id, ev.classroom_id = BINDING.school_id, BINDING.classroom_id
        ev.device_id = BINDING.device_id
        ev.received_at.seconds, ev.received_at.nanos = 7, 9
    body = encode_batch(pb.EventBatch(events=batch))
    binding = Binding(BINDING.school_id, BINDING.classroom_id, BINDING.device_id)  # no registered kind
    now_ns = int(NOW * 1e9) // 10**9 * 10**9  # nanos 0: a stamp must still clear the device's 9
    verdict = judge(decode_batch(body), binding, now_ns)
    assert verdict.accepted == len(batch) and verdict.rejected == [] and verdict.value is not None
    expected = []
    for ev in batch:
        ev.received_at.seconds, ev.received_at.nanos = now_ns // 10**9, 0
        expected.append(ev)
    assert decode_batch(verdict.value) == pb.EventBatch(events=expected)


def test_unknown_fields_are_dropped(client, publisher):
    sent = event()
    raw = sent.SerializeToString() + b"\xf8\x07\x01"  # field 127, varint: not in the schema
    assert post(client, b"\x0a" + bytes([len(raw)]) + raw).json() == {"accepted": 1, "rejected": []}
    (written,) = publisher.on("ev")
    sent.received_at.CopyFrom(decode_batch(written).events[0].received_at)
    assert written == encode_batch([sent])  # the event as sent, stamped, and nothing else


# -- device kind: filled from the registration when unset, a different one rejected (docs/DESIGN.md §4) --


def test_unset_device_kind_is_filled_from_the_registration(client, publisher):
    unset = event(device_kind=pb.DEVICE_KIND_UNSPECIFIED)
    r = post(client, encode_batch([unset, event()]))
    assert r.status_code == 200 and r.json() == {"accepted": 2, "rejected": []}
    (written,) = publisher.on("ev")
    got = decode_batch(written).events
    assert [e.event_id for e in got] == [unset.event_id, got[1].event_id]
    assert [e.device_kind for e in got] == [pb.DEVICE_KIND_TABLET, pb.DEVICE_KIND_TABLET]
    assert publisher.on("dl") == []


def test_unset_device_kind_is_filled_in_json_too(client, publisher):
    body = batch_to_json(pb.EventBatch(events=[event(device_kind=pb.DEVICE_KIND_UNSPECIFIED)]))
    assert b"deviceKind" not in body and b"device_kind" not in body  # proto3 JSON omits it
    assert post(client, body, "application/json").json() == {"accepted": 1, "rejected": []}
    (written,) = publisher.on("ev")
    assert decode_batch(written).events[0].device_kind == pb.DEVICE_KIND_TABLET


def test_a_kind_other_than_the_registered_one_is_rejected_the_rest_lands(client, publisher):
    good, unset = event(), event(device_kind=pb.DEVICE_KIND_UNSPECIFIED)
    camera = event(device_kind=pb.DEVICE_KIND_CAMERA)
    body = post(client, encode_batch([good, camera, unset])).json()
    assert body["accepted"] == 2
    assert body["rejected"] == [
        {
            "index": 1,
            "event_id": camera.event_id,
            "error": "device_kind: DEVICE_KIND_CAMERA is not the kind DEVICE_KIND_TABLET device 'tab-1' "
            "is registered as (leave device_kind unset to use the registration)",
        }
    ]
    (written,) = publisher.on("ev")
    got = decode_batch(written).events
    assert [e.event_id for e in got] == [good.event_id, unset.event_id]
    assert {e.device_kind for e in got} == {pb.DEVICE_KIND_TABLET}
    (letter,) = [ppb.DeadLetter.FromString(v) for v in publisher.on("dl")]
    assert letter.raw_sha256 == hashlib.sha256(camera.SerializeToString()).hexdigest()
    assert letter.error == body["rejected"][0]["error"]  # no event value in it: stored as answered
    assert 'classtrace_gateway_events_rejected_total{reason="device_kind"} 1.0' in client.get("/metrics").text


def test_a_rejected_event_whose_kind_was_filled_is_dead_lettered_as_received(client, publisher):
    bad = event(device_kind=pb.DEVICE_KIND_UNSPECIFIED, event_id="not-a-uuid")
    body = post(client, encode_batch([bad])).json()
    assert body["accepted"] == 0 and body["rejected"][0]["error"].startswith("event_id: must be a UUID")
    (letter,) = [ppb.DeadLetter.FromString(v) for v in publisher.on("dl")]
    # device_kind still unset, as the device sent it
    assert letter.raw_sha256 == hashlib.sha256(bad.SerializeToString()).hexdigest()


def test_without_a_registered_kind_the_events_own_kinds_stand():
    binding = Binding("sch-A", "room-1", "tab-1")  # registered before kinds were recorded
    camera, unset = event(device_kind=pb.DEVICE_KIND_CAMERA), event(device_kind=pb.DEVICE_KIND_UNSPECIFIED)
    verdict = judge(pb.EventBatch(events=[camera, unset]), binding, time.time_ns())
    assert verdict.accepted == 1 and verdict.value is not None
    assert [e.device_kind for e in decode_batch(verdict.value).events] == [pb.DEVICE_KIND_CAMERA]
    assert verdict.rejected[0]["error"].startswith("device_kind: must be set")
