"""POST /v1/events without Kafka: every documented status, tenant binding, stamping, fuzzed bodies."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from classtrace.codec import batch_to_json, decode_batch, encode_batch
from classtrace.ids import pseudonymise
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from producers.errors import TransportError
from producers.gateway.app import GatewayConfig, build_app
from producers.gateway.auth import Binding, StaticDirectory
from producers.gateway.ingest import accept_wire, judge
from tests.helpers.strategies import NOW, events

# starlette's TestClient warns that it prefers httpx2; httpx is what the project ships.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

TOKEN = "tok-A"
BINDING = Binding("sch-A", "room-1", "tab-1", pb.DEVICE_KIND_TABLET)
PB = "application/x-protobuf"


class FakePublisher:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, str | None]] = []
        self.fail = False

    def publish(self, topic, value, key=None):
        future = asyncio.get_running_loop().create_future()
        if self.fail:
            future.set_exception(TransportError("broker down"))
        else:
            self.records.append((topic, value, key))
            future.set_result(None)
        return future

    def on(self, topic):
        return [value for t, value, _ in self.records if t == topic]


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


def event(**kw) -> pb.Event:
    ev = pb.Event(
        event_id=str(uuid.uuid4()),
        school_id="sch-A",
        classroom_id="room-1",
        device_id="tab-1",
        lesson_id="les-1",
        device_kind=pb.DEVICE_KIND_TABLET,
        seq=1,
    )
    ev.occurred_at.seconds = int(time.time())
    ev.trace.student_id = pseudonymise(b"k", "sch-A", "stu-1")
    ev.trace.verb = pb.LearningTrace.VERB_VIEWED
    for k, v in kw.items():
        setattr(ev, k, v)
    return ev


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
    assert (topic, key) == ("ev", "room-1")
    got = decode_batch(value).events
    assert [e.event_id for e in got] == [e.event_id for e in events]
    assert all(e.received_at.seconds * 10**9 + e.received_at.nanos >= before - 10**9 for e in got)


def test_accepts_proto3_json(client, publisher):
    body = batch_to_json(pb.EventBatch(events=[event()]))
    r = post(client, body, "application/json; charset=utf-8")
    assert r.json()["accepted"] == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("school_id", "sch-B", "school_id: 'sch-B' is not the token's school 'sch-A'"),
        ("classroom_id", "room-2", "classroom_id: 'room-2' is not the token's classroom"),
        ("device_id", "tab-9", "device_id: 'tab-9' is not the token's device"),
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
    assert (letter.source, letter.event_id, letter.school_id) == ("gateway", bad.event_id, "sch-A")
    assert pb.Event.FromString(letter.raw) == bad


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
def test_the_wire_fast_path_publishes_what_judge_would(batch):
    """Bytes accepted in C become the same record as the decoding path makes of them."""
    for ev in batch:
        ev.school_id, ev.classroom_id = BINDING.school_id, BINDING.classroom_id
        ev.device_id = BINDING.device_id
    body = encode_batch(pb.EventBatch(events=batch))
    now_ns = int(NOW * 1e9)
    fast = accept_wire(body, BINDING, now_ns)
    slow = judge(decode_batch(body), BINDING, now_ns)
    assert fast is not None and fast.value is not None and slow.value is not None
    assert fast.accepted == slow.accepted == len(batch)
    assert decode_batch(fast.value) == decode_batch(slow.value)
