"""The embedded broker works the way every stage relies on: topics, groups, commits."""

from __future__ import annotations

import time

import pytest

from classtrace.broker import EmbeddedBroker
from classtrace.errors import BrokerError
from classtrace.kafka import (
    TopicPartition,
    check_reachable,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
)
from classtrace.topics import ALL_TOPICS, DEVICES, EVENTS

pytestmark = pytest.mark.integration


def _consume(consumer, want: int, timeout: float = 30.0) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        got.append(msg.value())
        consumer.store_offsets(msg)
    return got


def test_produce_and_consume_through_a_consumer_group(kafka, topic_factory, group_id):
    topic = topic_factory(partitions=3)
    producer = make_producer(kafka.bootstrap)
    sent = [f"value-{i}".encode() for i in range(50)]
    for i, value in enumerate(sent):
        producer.produce(topic, key=f"classroom-{i % 7}", value=value)
    assert producer.flush(10) == 0

    consumer = make_consumer(kafka.bootstrap, group_id)
    consumer.subscribe([topic])
    try:
        got = _consume(consumer, len(sent))
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    finally:
        consumer.close()
    assert sorted(got) == sorted(sent)
    assert sum(tp.offset for tp in committed if tp.offset >= 0) == len(sent)

    # A second consumer of the same group resumes after the committed offsets: nothing is redelivered.
    producer.produce(topic, key="classroom-0", value=b"after")
    producer.flush(10)
    again = make_consumer(kafka.bootstrap, group_id)
    again.subscribe([topic])
    try:
        assert _consume(again, 1) == [b"after"]
    finally:
        again.close()


def test_ensure_topics_creates_contract_topics_once(fresh_broker):
    created = ensure_topics(fresh_broker.bootstrap, partitions=3)
    assert sorted(created) == sorted(spec.name for spec in ALL_TOPICS)
    assert ensure_topics(fresh_broker.bootstrap, partitions=3) == []
    topics = make_admin(fresh_broker.bootstrap).list_topics(timeout=10).topics
    assert len(topics[EVENTS].partitions) == 3
    assert len(topics[DEVICES].partitions) == 1


def test_unreachable_bootstrap_names_itself():
    broker = EmbeddedBroker()  # a free port nobody listens on
    with pytest.raises(BrokerError, match=rf"{broker.bootstrap}.*CLASSTRACE_KAFKA_BOOTSTRAP"):
        check_reachable(broker.bootstrap, timeout=2)


def test_broker_stops_cleanly():
    broker = EmbeddedBroker().start()
    assert broker.alive()
    check_reachable(broker.bootstrap, timeout=5)
    broker.stop()
    assert not broker.alive()
