"""Hostile requests to ``POST /v1/events`` that the other gateway tests do not send: deep nesting,
one huge string, wrong content types, NUL bytes in ids and tokens, a chunked body over the limit,
and a 1 MiB Authorization header. Each must get its documented refusal (docs/DESIGN.md §5), write
nothing it should not, answer with a bounded body (no echo of what was sent), and leave the
gateway serving the next device.
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Iterator

import orjson
import pytest
from starlette.testclient import TestClient

from classtrace.codec import batch_to_json, decode_batch, encode_batch
from classtrace.ids import pseudonymise
from classtrace.v1 import events_pb2 as pb
from tests.helpers.gateway_http import read_until_closed, serving
from tests.hostile.support import BINDING, EVENTS_TOPIC, TOKEN, FakePublisher, gateway_app

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

PB, JSON = "application/x-protobuf", "application/json"
MIB = 1024 * 1024
SMALL = 512  # bytes: what a refusal may take at most, however large the request was


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def client(publisher: FakePublisher) -> Iterator[TestClient]:
    with TestClient(gateway_app(publisher)) as c:
        yield c


def good_event(**fields: object) -> pb.Event:
    ev = pb.Event(
        event_id=str(uuid.uuid4()),
        school_id=BINDING.school_id,
        classroom_id=BINDING.classroom_id,
        device_id=BINDING.device_id,
        device_kind=pb.DEVICE_KIND_TABLET,
        seq=1,
    )
    ev.occurred_at.seconds = int(time.time())
    ev.trace.student_id = pseudonymise(b"k", BINDING.school_id, "stu-1")
    ev.trace.verb = pb.LearningTrace.VERB_VIEWED
    for name, value in fields.items():
        setattr(ev, name, value)
    return ev


def post(client: TestClient, body: bytes, ctype: str = PB, token: str | None = TOKEN, **headers: str):
    sent = {"Content-Type": ctype, **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return client.post("/v1/events", content=body, headers=sent)


def still_serving(client: TestClient, publisher: FakePublisher) -> None:
    """A valid request from the registered device is accepted and written after the hostile one."""
    ev = good_event()
    before = len(publisher.on(EVENTS_TOPIC))
    r = post(client, encode_batch([ev]))
    assert r.status_code == 200 and r.json() == {"accepted": 1, "rejected": []}
    written = publisher.on(EVENTS_TOPIC)[before:]
    assert [e.event_id for e in decode_batch(written[0]).events] == [ev.event_id]


@pytest.mark.parametrize(
    "body",
    [
        b'{"events":' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        b'{"events":[' + b'{"events":' * 50_000 + b"[]" + b"}" * 50_000 + b"]}",
        b'{"events":[{"trace":' + b'{"trace":' * 1_000 + b"{}" + b"}" * 1_000 + b"}]}",
    ],
    ids=["arrays-200k-deep", "objects-50k-deep", "objects-1k-deep-in-an-event"],
)
def test_deeply_nested_json_is_a_400(client, publisher, body):
    r = post(client, body, JSON)
    assert r.status_code == 400 and r.json()["error"].startswith("undecodable body")
    assert len(r.content) < SMALL and publisher.records == []
    still_serving(client, publisher)


@pytest.mark.parametrize("ctype", [PB, JSON])
def test_one_huge_id_is_rejected_without_being_echoed(client, publisher, ctype):
    huge = "9" * (MIB - 1024)
    bad = good_event(school_id=huge)
    body = encode_batch([bad])
    if ctype == JSON:
        doc = orjson.loads(orjson.dumps({"events": [{"school_id": huge, "event_id": bad.event_id}]}))
        body = orjson.dumps(doc)
    assert len(body) <= MIB
    r = post(client, body, ctype)
    assert r.status_code == 200
    answer = r.json()
    assert answer["accepted"] == 0 and answer["rejected"][0]["error"].startswith("school_id")
    assert len(r.content) < SMALL
    assert publisher.on(EVENTS_TOPIC) == []
    still_serving(client, publisher)


@pytest.mark.parametrize(
    "ctype",
    [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "application/json-seq",
        "application/jsonx",
        "application/x-protobuf+json",
        "application/grpc",
        "json",
        "application/json\x00",
        "*/*",
        "x" * 100_000,
    ],
    ids=lambda c: c[:30].replace("\x00", "NUL"),
)
def test_a_wrong_content_type_is_a_415_that_does_not_echo_it(client, publisher, ctype):
    r = post(client, encode_batch([good_event()]), ctype)
    assert r.status_code == 415 and r.json()["error"].startswith("unsupported content type")
    assert len(r.content) < SMALL and publisher.records == []
    still_serving(client, publisher)


def test_no_content_type_is_a_415(client, publisher):
    r = client.post(
        "/v1/events", content=encode_batch([good_event()]), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert r.status_code == 415 and "(none)" in r.json()["error"]
    assert publisher.records == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("school_id", "sch-A\x00"),
        ("classroom_id", "\x00room-1"),
        ("device_id", "tab\x00-1"),
        ("lesson_id", "\x00"),
        ("event_id", str(uuid.UUID(int=7)) + "\x00"),
    ],
)
@pytest.mark.parametrize("ctype", [PB, JSON])
def test_a_nul_byte_in_an_id_rejects_the_event(client, publisher, field, value, ctype):
    bad, good = good_event(**{field: value}), good_event()
    batch = pb.EventBatch(events=[bad, good])
    body = encode_batch(batch) if ctype == PB else batch_to_json(batch)  # JSON: NUL as \u0000
    r = post(client, body, ctype)
    assert r.status_code == 200
    rejected = r.json()["rejected"]
    assert rejected[0]["index"] == 0 and rejected[0]["error"].startswith(field)
    for written in publisher.on(EVENTS_TOPIC):
        assert all("\x00" not in getattr(e, field) for e in decode_batch(written).events)


@pytest.mark.parametrize("token", [TOKEN + "\x00", "\x00" + TOKEN, TOKEN[:-1] + "\x00"])
def test_a_nul_byte_in_the_token_is_a_401(client, publisher, token):
    r = post(client, encode_batch([good_event()]), token=token)
    assert r.status_code == 401 and publisher.records == []
    still_serving(client, publisher)


@pytest.mark.parametrize("size", [MIB + 1, 4 * MIB])
def test_a_chunked_body_over_1_mib_is_a_413(client, publisher, size):
    """Without Content-Length the gateway counts what arrives and stops at the limit."""

    def chunks() -> Iterator[bytes]:
        sent = 0
        while sent < size:
            piece = min(64 * 1024, size - sent)
            sent += piece
            yield b"\x00" * piece

    r = client.post(
        "/v1/events", content=chunks(), headers={"Content-Type": PB, "Authorization": f"Bearer {TOKEN}"}
    )
    assert r.status_code == 413 and r.json()["error"].startswith("body larger than")
    assert publisher.records == []
    still_serving(client, publisher)


def test_a_chunked_body_of_exactly_1_mib_is_read_and_judged(client, publisher):
    def chunks() -> Iterator[bytes]:
        yield from (b"\x00" * (64 * 1024) for _ in range(16))

    r = client.post(
        "/v1/events", content=chunks(), headers={"Content-Type": PB, "Authorization": f"Bearer {TOKEN}"}
    )
    assert r.status_code == 400 and publisher.records == []  # field number 0: not an EventBatch


@pytest.mark.parametrize("token", ["a" * MIB, TOKEN + "a" * MIB, TOKEN + " " * MIB + "x"])
def test_a_1_mib_authorization_header_is_a_401(client, publisher, token):
    r = post(client, encode_batch([good_event()]), token=token)
    assert r.status_code == 401 and len(r.content) < SMALL and publisher.records == []
    still_serving(client, publisher)


def test_a_1_mib_authorization_header_over_http_is_refused_and_the_server_keeps_serving():
    """Through the real server (uvicorn + httptools, as ``classtrace gateway`` runs): a refusal,
    whatever layer gives it, and the next device is served."""
    publisher = FakePublisher()
    app = gateway_app(publisher)
    body = encode_batch([good_event()])
    with serving(app) as (host, port):
        with socket.create_connection((host, port), timeout=30) as sock:
            head = (
                f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: {PB}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\nAuthorization: Bearer "
            ).encode()
            with contextlib.suppress(OSError):  # the server may close before reading it all: a refusal too
                sock.sendall(head + b"a" * MIB + b"\r\n\r\n" + body)
            answer = read_until_closed(sock)
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
        assert status in (None, 400, 401, 431)
        assert len(answer) < 4096 and publisher.records == []
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(
                f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: {PB}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n"
                f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
                + body
            )
            assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")
    assert len(publisher.on(EVENTS_TOPIC)) == 1
