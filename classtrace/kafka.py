"""The Kafka seam: the one module that imports ``confluent_kafka``.

Stages get producers, consumers and topic administration from here, so client settings that the
whole system relies on live in one place: idempotent acks=all producers (a 200 from the gateway
means durably in Kafka), manual offset storage for at-least-once consumers, and the consumer-group
timings that make the embedded Tansu broker join in ~3 s instead of ~23 s (FIELD-NOTES).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from classtrace.errors import BrokerError, ConfigError
from classtrace.topics import ALL_TOPICS, TopicSpec

__all__ = [
    "Consumer",
    "KafkaError",
    "KafkaException",
    "Message",
    "Producer",
    "TopicPartition",
    "check_reachable",
    "consumer_config",
    "ensure_topics",
    "make_admin",
    "make_consumer",
    "make_producer",
    "producer_config",
]

logger = logging.getLogger(__name__)

# Consumer-group timings that make Tansu (and small Kafka clusters) rebalance in seconds.
GROUP_TIMINGS: dict[str, Any] = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


# What the no-loss / no-double-count guarantees rest on: never taken from the environment.
_PRODUCER_GUARANTEES: dict[str, Any] = {"enable.idempotence": True, "acks": "all"}
_CONSUMER_GUARANTEES: dict[str, Any] = {"enable.auto.offset.store": False, "enable.auto.commit": True}
# Tuned defaults: a deployment may change these with CLASSTRACE_KAFKA_<property>.
_PRODUCER_DEFAULTS: dict[str, Any] = {
    "compression.type": "lz4",
    "linger.ms": 5,
    "message.max.bytes": 8 * 1024 * 1024,
}
_CONSUMER_DEFAULTS: dict[str, Any] = {
    "auto.offset.reset": "earliest",
    "fetch.queue.backoff.ms": 10,
    **GROUP_TIMINGS,
}


def _config(
    bootstrap: str,
    defaults: Mapping[str, Any],
    options: Mapping[str, str] | None,
    guarantees: Mapping[str, Any],
) -> dict[str, Any]:
    """Defaults, then the environment's ``options``, then the guarantees (which options may not
    change: a clear error rather than a silently weaker pipeline)."""
    options = dict(options or {})
    for key, value in guarantees.items():
        if key in options and str(options[key]).lower() != str(value).lower():
            env = "CLASSTRACE_KAFKA_" + key.upper().replace(".", "_")
            raise ConfigError(
                env,
                f"{options[key]!r} is not allowed: classtrace needs {key}={value} "
                "to lose no acknowledged event and count none twice",
            )
    return {"bootstrap.servers": bootstrap, **defaults, **options, **guarantees}


def producer_config(
    bootstrap: str, options: Mapping[str, str] | None = None, **overrides: Any
) -> dict[str, Any]:
    """Idempotent, acks=all producer settings (lz4, 5 ms linger unless ``options`` say otherwise);
    ``options`` are the env passthrough, ``overrides`` the caller's own."""
    return {**_config(bootstrap, _PRODUCER_DEFAULTS, options, _PRODUCER_GUARANTEES), **overrides}


def consumer_config(
    bootstrap: str, group: str, options: Mapping[str, str] | None = None, **overrides: Any
) -> dict[str, Any]:
    """At-least-once consumer settings: offsets are stored by the caller only after processing."""
    config = _config(bootstrap, _CONSUMER_DEFAULTS, options, _CONSUMER_GUARANTEES)
    return {**config, "group.id": group, **overrides}


def make_producer(bootstrap: str, options: Mapping[str, str] | None = None, **overrides: Any) -> Producer:
    """A producer with :func:`producer_config` settings."""
    return Producer(producer_config(bootstrap, options, **overrides))


def make_consumer(
    bootstrap: str, group: str, options: Mapping[str, str] | None = None, **overrides: Any
) -> Consumer:
    """A consumer with :func:`consumer_config` settings."""
    return Consumer(consumer_config(bootstrap, group, options, **overrides))


def make_admin(bootstrap: str, options: Mapping[str, str] | None = None) -> AdminClient:
    """An admin client for topic management."""
    return AdminClient({"bootstrap.servers": bootstrap, **(options or {})})


def check_reachable(bootstrap: str, options: Mapping[str, str] | None = None, timeout: float = 10.0) -> None:
    """Raise :class:`BrokerError` naming ``bootstrap`` unless a broker answers within ``timeout``."""
    admin = make_admin(bootstrap, {**(options or {}), "socket.connection.setup.timeout.ms": "5000"})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerError(
            f"cannot reach Kafka bootstrap {bootstrap!r} (CLASSTRACE_KAFKA_BOOTSTRAP) "
            f"within {timeout:.0f} s: {exc.args[0] if exc.args else exc}"
        ) from None


def ensure_topics(
    bootstrap: str,
    partitions: int,
    options: Mapping[str, str] | None = None,
    topics: Iterable[TopicSpec] = ALL_TOPICS,
    replication: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created now.

    Existing topics are left as they are (idempotent), so this runs at every start-up.
    """
    admin = make_admin(bootstrap, options)
    wanted = [
        NewTopic(
            spec.name,
            1 if spec.single_partition else partitions,
            replication,
            config=dict(spec.config),
        )
        for spec in topics
    ]
    futures = admin.create_topics(wanted, request_timeout=timeout)
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise BrokerError(f"cannot create topic {name!r} on {bootstrap!r}: {err}") from None
    _wait_for_metadata(admin, [t.topic for t in wanted], timeout)
    if created:
        logger.info("created topics %s partitions=%d", ",".join(sorted(created)), partitions)
    return created


def _wait_for_metadata(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Wait until the broker lists every topic with its partitions' leaders."""
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=timeout)
        missing = [n for n in names if n not in metadata.topics or metadata.topics[n].error]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise BrokerError(f"topics not visible after {timeout:.0f} s: {', '.join(missing)}")
        time.sleep(0.1)
