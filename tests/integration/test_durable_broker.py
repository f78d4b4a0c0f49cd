"""The durable embedded broker (issue 18): Tansu over a local S3 endpoint keeps every acknowledged
record through a kill -9, and comes back on its port for the clients that were connected."""

from __future__ import annotations

import os
import signal
import time

import pytest

from classtrace.broker import EmbeddedBroker
from classtrace.kafka import TopicPartition, ensure_topics, make_consumer, make_producer
from classtrace.objectstore import LocalObjectStore, find_s3rver
from classtrace.topics import TopicSpec

pytestmark = pytest.mark.integration


def _read_all(bootstrap: str, topic: str, partitions: int, expect: int) -> list[bytes]:
    consumer = make_consumer(bootstrap, "durable-read", **{"enable.partition.eof": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < expect and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value() or b"")
    finally:
        consumer.close()
    return got


def test_acknowledged_records_survive_a_kill_9_of_the_broker(tmp_path):
    store = LocalObjectStore(tmp_path / "broker", find_s3rver(), log_path=tmp_path / "s3rver.log").start()
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log", storage_env=store.tansu_env()).start()
    try:
        ensure_topics(broker.bootstrap, 2, topics=[TopicSpec("durable")])
        producer = make_producer(broker.bootstrap)
        acked: list[bytes] = []
        for i in range(3000):
            value = f"event-{i}".encode()
            producer.produce(
                "durable", value, key=str(i % 7).encode(),
                on_delivery=lambda err, msg: acked.append(msg.value()) if err is None else None,
            )  # fmt: skip
            producer.poll(0)
        assert producer.flush(30) == 0
        assert len(acked) == 3000

        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGKILL)
        broker.restart()
        assert broker.alive() and broker.restarts == 1

        assert sorted(_read_all(broker.bootstrap, "durable", 2, 3000)) == sorted(acked)
        # The producer that was connected before the kill writes again after the restart.
        producer.produce("durable", b"after", key=b"0")
        assert producer.flush(30) == 0
        assert b"after" in _read_all(broker.bootstrap, "durable", 2, 3001)
    finally:
        broker.stop()
        store.stop()
