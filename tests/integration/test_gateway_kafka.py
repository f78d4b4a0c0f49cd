"""The gateway over a real broker: SDK → HTTP → Kafka exactly once, tenant binding, registry."""

from __future__ import annotations

import hashlib
import time
import uuid

import httpx
import pytest

from classtrace.codec import encode_batch
from classtrace.v1 import events_pb2 as pb
from producers.registry import register_device, revoke_device
from producers.sdk import EdgeProducer
from producers.transport.http import HttpTransport
from tests.helpers.ingest_helpers import (
    gateway_config,
    make_topics,
    read_dead_letters,
    read_events,
    running_gateway,
    wait_for,
)

pytestmark = pytest.mark.integration


def traces(edge: EdgeProducer, device: str, n: int) -> list[pb.Event]:
    out = []
    for i in range(n):
        ev = edge.event(device, pb.DEVICE_KIND_TABLET, lesson_id="les-1")
        ev.trace.student_id = f"stu-{i % 40}"  # raw: the SDK pseudonymises
        ev.trace.verb = pb.LearningTrace.VERB_ANSWERED
        ev.trace.item_id = f"q-{i % 7}"
        ev.trace.correct = i % 3 == 0
        out.append(ev)
    return out


def register(kafka, topics, school="sch-A", classroom="room-1", device="tab-1"):
    token, _ = register_device(
        kafka.bootstrap,
        None,
        school_id=school,
        classroom_id=classroom,
        device_id=device,
        kind=pb.DEVICE_KIND_TABLET,
        topic=topics.devices,
    )
    return token


def post(url, token, events):
    return httpx.post(
        url + "/v1/events",
        content=encode_batch(events),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"},
    )


def test_sdk_through_gateway_exactly_once(kafka, tmp_path):
    topics = make_topics(kafka.bootstrap)
    tokens = {"tab-1": register(kafka, topics), "tab-2": register(kafka, topics, device="tab-2")}
    with running_gateway(gateway_config(kafka.bootstrap, topics)) as url:
        transport = HttpTransport(url, tokens)
        with EdgeProducer("sch-A", "room-1", transport, spool=tmp_path / "s.db", pseudonym_key=b"k") as edge:
            sent = []
            for _ in range(10):
                sent += edge.send_events(traces(edge, "tab-1", 100) + traces(edge, "tab-2", 100))
            before = time.time()
            edge.flush()
            stats = edge.stats()
            assert (stats.delivered, stats.rejected_by_peer, stats.quarantined) == (2000, 0, 0)
    got = read_events(kafka.bootstrap, topics.events)
    assert sorted(e.event_id for e in got) == sorted(sent)
    assert all(e.trace.student_id.startswith("ps_") for e in got)
    assert all(e.received_at.seconds >= int(before) - 1 for e in got)  # stamped at ingest
    assert read_dead_letters(kafka.bootstrap, topics.deadletter) == []


def test_token_for_school_a_cannot_write_school_b(kafka, tmp_path):
    topics = make_topics(kafka.bootstrap)
    token_a = register(kafka, topics)
    with running_gateway(gateway_config(kafka.bootstrap, topics)) as url:
        edge = EdgeProducer(
            "sch-B",
            "room-1",
            HttpTransport(url, {}),
            spool=tmp_path / "s.db",
            pseudonym_key=b"k",
            background=False,
        )
        forged = traces(edge, "tab-1", 3)
        edge.send_events(forged)  # completes and validates them; never sent by this producer
        edge.close(timeout=0)
        r = post(url, token_a, forged)
        assert r.status_code == 200
        body = r.json()
        assert body["accepted"] == 0 and len(body["rejected"]) == 3
        assert all("must be the token's school 'sch-A'" in item["error"] for item in body["rejected"])
    assert read_events(kafka.bootstrap, topics.events) == []
    letters = read_dead_letters(kafka.bootstrap, topics.deadletter)
    assert sorted(d.event_id for d in letters) == sorted(e.event_id for e in forged)
    assert {d.source for d in letters} == {"gateway"}


def test_new_token_accepted_and_revoked_token_refused(kafka, tmp_path):
    topics = make_topics(kafka.bootstrap)
    register(kafka, topics, device="tab-0")  # the registry is not empty at start
    with running_gateway(gateway_config(kafka.bootstrap, topics)) as url:
        token = register(kafka, topics, device="tab-9")
        edge = EdgeProducer(
            "sch-A",
            "room-1",
            HttpTransport(url, {}),
            spool=tmp_path / "s.db",
            pseudonym_key=b"k",
            background=False,
        )
        events = traces(edge, "tab-9", 1)
        edge.send_events(events)
        edge.close(timeout=0)
        statuses = []
        wait_for(
            lambda: statuses.append(post(url, token, events).status_code) or statuses[-1] == 200,
            "the new token to be accepted",
        )
        revoke_device(kafka.bootstrap, None, school_id="sch-A", device_id="tab-9", topic=topics.devices)
        wait_for(lambda: post(url, token, events).status_code == 401, "the revoked token to be refused")
        assert httpx.get(url + "/healthz").json()["devices"] == 1


def test_malformed_requests_over_real_stack(kafka):
    topics = make_topics(kafka.bootstrap)
    token = register(kafka, topics)
    with running_gateway(gateway_config(kafka.bootstrap, topics)) as url:
        bad = httpx.post(
            url + "/v1/events",
            content=b"\x08\x96",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"},
        )
        assert bad.status_code == 400 and "undecodable body" in bad.json()["error"]
        big = httpx.post(
            url + "/v1/events",
            content=b"\x00" * (2 << 20),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"},
        )
        assert big.status_code == 413
        metrics = httpx.get(url + "/metrics").text
        assert 'classtrace_gateway_requests_total{status="400"} 1.0' in metrics
        assert httpx.get(url + "/healthz").status_code == 200
    assert read_events(kafka.bootstrap, topics.events) == []


def test_dead_letter_keeps_raw_event_and_reason(kafka):
    topics = make_topics(kafka.bootstrap)
    token = register(kafka, topics)
    ev = pb.Event(
        event_id=str(uuid.uuid4()),
        school_id="sch-A",
        classroom_id="room-1",
        device_id="tab-1",
        device_kind=pb.DEVICE_KIND_TABLET,
    )
    ev.occurred_at.seconds = int(time.time()) + 3600
    ev.heartbeat.interval_s = 10
    with running_gateway(gateway_config(kafka.bootstrap, topics)) as url:
        body = post(url, token, [ev]).json()
    assert body["accepted"] == 0 and "in the future" in body["rejected"][0]["error"]
    (letter,) = read_dead_letters(kafka.bootstrap, topics.deadletter)
    assert "in the future" in letter.error and letter.field == "occurred_at"
    assert letter.raw == b"" and letter.raw_sha256 == hashlib.sha256(ev.SerializeToString()).hexdigest()
