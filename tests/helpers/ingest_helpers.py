"""Helpers of the ingest tests (SDK, gateway, registry): a gateway in a thread, topic readers."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from classtrace.broker import free_port
from classtrace.codec import decode_batch
from classtrace.kafka import KafkaError, TopicPartition, ensure_topics, make_consumer
from classtrace.topics import TopicSpec
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from producers.gateway.app import GatewayConfig, build_app
from producers.gateway.serve import ForegroundServer

WAIT = 60.0  # generous upper bound for conditions awaited by polling; never asserted on


@dataclass(frozen=True)
class IngestTopics:
    events: str
    deadletter: str
    devices: str


def make_topics(bootstrap: str, partitions: int = 2) -> IngestTopics:
    """Unique events/deadletter/devices topics for one test."""
    tag = uuid.uuid4().hex[:10]
    topics = IngestTopics(f"ev.{tag}", f"dl.{tag}", f"dev.{tag}")
    ensure_topics(bootstrap, partitions, topics=[TopicSpec(topics.events), TopicSpec(topics.deadletter)])
    ensure_topics(bootstrap, 1, topics=[TopicSpec(topics.devices, {"cleanup.policy": "compact"})])
    return topics


def gateway_config(bootstrap: str, topics: IngestTopics) -> GatewayConfig:
    return GatewayConfig(
        bootstrap,
        events_topic=topics.events,
        deadletter_topic=topics.deadletter,
        devices_topic=topics.devices,
    )


@contextlib.contextmanager
def running_gateway(config: GatewayConfig, port: int | None = None) -> Iterator[str]:
    """Serve a gateway app in a thread (real uvicorn); yields its base URL once /healthz is 200."""
    import uvicorn

    port = port or free_port()
    server = ForegroundServer(
        uvicorn.Config(build_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _healthy(url) or not thread.is_alive(), "gateway /healthz")
    assert thread.is_alive(), "gateway thread died at start"
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(15)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(condition, what: str, timeout: float = WAIT, interval: float = 0.05) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout`` (a hang guard)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def read_records(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic`` now: all partitions, from the start to the end librdkafka reports
    (partition EOF; Tansu's high watermark stops short of the end of a multi-record batch)."""
    consumer = make_consumer(
        bootstrap, f"t-{uuid.uuid4().hex[:8]}", **{"enable.auto.commit": False, "enable.partition.eof": True}
    )
    try:
        meta = consumer.list_topics(topic, timeout=10)
        parts = list(meta.topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        pending = {p for p in parts if ends[p] > 0}
        consumer.assign([TopicPartition(topic, p, -2) for p in pending])
        out: list[tuple[bytes | None, bytes]] = []
        deadline = time.monotonic() + WAIT
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {topic}")
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                continue
            out.append((msg.key(), msg.value()))
        return out
    finally:
        consumer.close()


def read_events(bootstrap: str, topic: str) -> list[pb.Event]:
    """Every event in the EventBatch records of ``topic``."""
    return [ev for _key, value in read_records(bootstrap, topic) for ev in decode_batch(value).events]


def read_dead_letters(bootstrap: str, topic: str) -> list[ppb.DeadLetter]:
    return [ppb.DeadLetter.FromString(value) for _key, value in read_records(bootstrap, topic)]


def count_events(bootstrap: str, topic: str) -> int:
    return len(read_events(bootstrap, topic))
