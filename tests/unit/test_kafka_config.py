"""Client settings: deployments tune Kafka through CLASSTRACE_KAFKA_*, never the guarantees."""

from __future__ import annotations

import pytest

from classtrace.errors import ConfigError
from classtrace.kafka import consumer_config, producer_config


def test_defaults_hold_the_guarantees():
    producer = producer_config("k:9092")
    assert producer["enable.idempotence"] is True and producer["acks"] == "all"
    assert producer["compression.type"] == "lz4"
    consumer = consumer_config("k:9092", "g")
    assert consumer["enable.auto.offset.store"] is False and consumer["group.id"] == "g"


def test_the_environment_tunes_the_defaults():
    """E.g. no compression on a loopback broker, a longer linger on a busy one."""
    options = {"compression.type": "none", "linger.ms": "20", "security.protocol": "SASL_SSL"}
    producer = producer_config("k:9092", options)
    assert producer["compression.type"] == "none"
    assert producer["linger.ms"] == "20"
    assert producer["security.protocol"] == "SASL_SSL"
    assert consumer_config("k:9092", "g", {"fetch.min.bytes": "65536"})["fetch.min.bytes"] == "65536"


@pytest.mark.parametrize(
    ("make", "key", "value"),
    [
        (producer_config, "acks", "1"),
        (producer_config, "enable.idempotence", "false"),
        (lambda b, o: consumer_config(b, "g", o), "enable.auto.offset.store", "true"),
        (lambda b, o: consumer_config(b, "g", o), "enable.auto.commit", "false"),
    ],
)
def test_the_environment_cannot_weaken_a_guarantee(make, key, value):
    env = "CLASSTRACE_KAFKA_" + key.upper().replace(".", "_")
    with pytest.raises(ConfigError, match=env):
        make("k:9092", {key: value})


def test_restating_a_guarantee_is_fine():
    assert producer_config("k:9092", {"acks": "all", "enable.idempotence": "true"})["acks"] == "all"
