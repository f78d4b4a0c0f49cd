"""Producing test records to the real broker and waiting on an outcome."""

from __future__ import annotations

import time

from classtrace.kafka import make_producer


def produce(bootstrap, items):
    """``items``: (topic, key, value bytes)."""
    producer = make_producer(bootstrap)
    for topic, key, value in items:
        producer.produce(topic, value=value, key=key)
        producer.poll(0)
    assert producer.flush(30) == 0


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
