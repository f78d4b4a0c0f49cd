"""``classtrace devices`` against a running embedded stack, and the registry surviving a restart."""

from __future__ import annotations

import json
import os
import stat
import time
import uuid

import httpx
import pytest

from classtrace.broker import EmbeddedBroker
from classtrace.cli import main
from classtrace.codec import encode_batch
from classtrace.kafka import CompactedTopicReader, ensure_topics, make_producer, read_compacted
from classtrace.runtime import Runtime, write_runtime
from classtrace.tokens import token_hash
from classtrace.v1 import events_pb2 as pb
from producers.gateway.app import GatewayConfig
from producers.registry import RegistryFile, read_registrations, restore_registry
from tests.helpers.ingest_helpers import running_gateway, wait_for

pytestmark = pytest.mark.integration


def heartbeat() -> pb.Event:
    ev = pb.Event(
        event_id=str(uuid.uuid4()),
        school_id="sch-1",
        classroom_id="room-1",
        device_id="cam-1",
        device_kind=pb.DEVICE_KIND_CAMERA,
    )
    ev.occurred_at.seconds = int(time.time())
    ev.heartbeat.interval_s = 10
    return ev


def post(url: str, token: str) -> int:
    return httpx.post(
        url + "/v1/events",
        content=encode_batch([heartbeat()]),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"},
    ).status_code


def cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_devices_cli_on_running_stack_and_restart(fresh_broker, tmp_path, monkeypatch, capsys):
    data_dir = tmp_path / "data"
    write_runtime(data_dir, Runtime(pid=os.getpid(), kafka_bootstrap=fresh_broker.bootstrap))
    monkeypatch.delenv("CLASSTRACE_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("CLASSTRACE_DATA_DIR", str(data_dir))
    ensure_topics(fresh_broker.bootstrap, 2)

    with running_gateway(GatewayConfig(fresh_broker.bootstrap)) as url:
        code, out = cli(
            capsys,
            "devices",
            "add",
            "--school",
            "sch-1",
            "--classroom",
            "room-1",
            "--device",
            "cam-1",
            "--kind",
            "camera",
        )
        assert code == 0
        token = out.strip()
        assert out == token + "\n" and len(token) >= 40  # the token, alone on stdout
        wait_for(lambda: post(url, token) == 200, "the new token to be accepted")

        code, out = cli(capsys, "devices", "list", "--format", "json")
        (row,) = [json.loads(line) for line in out.splitlines()]
        assert (row["device_id"], row["kind"], row["status"]) == ("cam-1", "camera", "active")

        record = data_dir / "devices.jsonl"
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        assert token not in record.read_text() and token_hash(token) in record.read_text()

    # A restarted embedded stack: a new, empty broker, restored from the data dir.
    with EmbeddedBroker() as again:
        ensure_topics(again.bootstrap, 2)
        assert restore_registry(data_dir, again.bootstrap) == 1
        assert list(read_registrations(again.bootstrap)) == ["sch-1/cam-1"]
        write_runtime(data_dir, Runtime(pid=os.getpid(), kafka_bootstrap=again.bootstrap))
        with running_gateway(GatewayConfig(again.bootstrap)) as url:
            assert post(url, token) == 200  # ready means the registry was read: no wait needed
            code, _ = cli(capsys, "devices", "revoke", "--school", "sch-1", "--device", "cam-1")
            assert code == 0
            wait_for(lambda: post(url, token) == 401, "the revoked token to be refused")
    assert RegistryFile(data_dir).load()["sch-1/cam-1"].revoked  # the next restore keeps it revoked


def test_devices_add_without_stack_or_bootstrap_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CLASSTRACE_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("CLASSTRACE_DATA_DIR", str(tmp_path))
    code = main(["devices", "add", "--school", "s", "--classroom", "c", "--device", "d"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "no running `classtrace up`" in captured.err


def test_compacted_topic_read_to_its_end_then_followed(kafka, topic_factory):
    """classtrace.kafka's registry reader: records produced in one batch (Tansu's watermark is the
    batch's base offset + 1, short of the end) are all read, tombstones come through as None,
    an empty topic is caught up at once, and what follows is read by poll()."""
    topic = topic_factory(1, config={"cleanup.policy": "compact"})
    seen: list[tuple[bytes | None, bytes | None]] = []

    def handle(key, value):
        seen.append((key, value))

    assert read_compacted(kafka.bootstrap, topic, handle) == 0 and seen == []
    producer = make_producer(kafka.bootstrap, **{"linger.ms": 200})  # one batch of three records
    for key, value in ((b"a", b"1"), (b"b", b"2"), (b"a", None)):
        producer.produce(topic, value, key=key)
    assert producer.flush(20) == 0
    assert read_compacted(kafka.bootstrap, topic, handle) == 3
    assert seen == [(b"a", b"1"), (b"b", b"2"), (b"a", None)]

    seen.clear()
    with CompactedTopicReader(kafka.bootstrap, topic) as reader:
        assert reader.catch_up(handle) == 3 and reader.caught_up
        producer.produce(topic, b"3", key=b"c")
        assert producer.flush(20) == 0
        deadline = time.monotonic() + 30
        while len(seen) < 4 and time.monotonic() < deadline:
            reader.poll(handle, 0.2)
    assert seen[-1] == (b"c", b"3")
