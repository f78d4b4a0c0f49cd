"""The Kafka seam: the one module that imports ``confluent_kafka``.

Stages get producers, consumers and topic administration from here, so client settings that the
whole system relies on live in one place: idempotent acks=all producers (a 200 from the gateway
means durably in Kafka), manual offset storage for at-least-once consumers, and the consumer-group
timings that make the embedded Tansu broker join in ~3 s instead of ~23 s (docs/FIELD-NOTES.md).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from classtrace.errors import BrokerError, ConfigError
from classtrace.signing import RecordKey
from classtrace.topics import ALL_TOPICS, TopicSpec

__all__ = [
    "OFFSET_BEGINNING",
    "CompactedTopicReader",
    "Consumer",
    "KafkaError",
    "KafkaException",
    "Message",
    "Producer",
    "TopicPartition",
    "align_topic_configs",
    "check_reachable",
    "consumer_config",
    "ensure_topics",
    "make_admin",
    "make_consumer",
    "make_producer",
    "producer_config",
    "read_compacted",
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

    Existing topics are left as they are (idempotent), so this runs at every start-up. On a
    cluster with ACLs (infra/kafka/acls.py) a role may not create topics: Kafka then answers
    TOPIC_AUTHORIZATION_FAILED even for a topic that exists, and the operator's init step
    created it. Such topics are left to that step, and not waited for (a role may not even
    see a topic it has no rights on).
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
    not_ours: set[str] = set()
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            err = exc.args[0]
            code = err.code() if isinstance(err, KafkaError) else None
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                not_ours.add(name)
                continue
            raise BrokerError(f"cannot create topic {name!r} on {bootstrap!r}: {err}") from None
    if not_ours:
        logger.info("not allowed to create topics %s: left to the operator", ",".join(sorted(not_ours)))
    _wait_for_metadata(admin, [t.topic for t in wanted if t.topic not in not_ours], timeout)
    if created:
        logger.info("created topics %s partitions=%d", ",".join(sorted(created)), partitions)
    return created


_NOT_ALLOWED = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED)


def align_topic_configs(
    bootstrap: str,
    topics: Iterable[TopicSpec],
    options: Mapping[str, str] | None = None,
    keys: tuple[str, ...] = ("retention.ms",),
    timeout: float = 30.0,
) -> dict[str, dict[str, str]]:
    """Set ``keys`` of existing topics to their specs' values where they differ (IncrementalAlterConfigs).

    :func:`ensure_topics` leaves an existing topic as it is; this brings a configured retention
    (docs/RETENTION.md) to topics created before. Returns topic → the settings changed now, so a
    second run returns nothing. A topic this principal may not describe or alter (ACLs) is left
    to the operator, as in :func:`ensure_topics`.
    """
    admin = make_admin(bootstrap, options)
    wanted = {spec.name: {k: spec.config[k] for k in keys if k in spec.config} for spec in topics}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name, config in wanted.items() if config]
    changes: dict[str, dict[str, str]] = {}
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        try:
            current = {k: e.value for k, e in future.result(timeout=timeout).items()}
        except KafkaException as exc:
            logger.info("cannot describe topic %s, left to the operator: %s", resource.name, exc.args[0])
            continue
        if diff := {k: v for k, v in wanted[resource.name].items() if current.get(k) != v}:
            changes[resource.name] = diff
    alters = [
        ConfigResource(
            ResourceType.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in diff.items()
            ],
        )
        for name, diff in changes.items()
    ]
    done: dict[str, dict[str, str]] = {}
    results = admin.incremental_alter_configs(alters, request_timeout=timeout) if alters else {}
    for resource, future in results.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() in _NOT_ALLOWED:
                logger.info("not allowed to alter topic %s: left to the operator", resource.name)
                continue
            raise BrokerError(
                f"cannot set {changes[resource.name]} on topic {resource.name!r}: {err}"
            ) from None
        logger.info("topic config set topic=%s config=%s", resource.name, changes[resource.name])
        done[resource.name] = changes[resource.name]
    return done


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


# --- compacted topics read to their end (the device and viewer registries) ------------------------

OFFSET_BEGINNING = -2
"""librdkafka's logical offset for "the first record the partition still holds"."""

RecordHandler = Callable[[bytes | None, bytes | None], None]
"""Called with each record's ``(key, value)``; a value of None is a tombstone."""


class CompactedTopicReader:
    """Partition 0 of a compacted, single-partition topic from its beginning (the registries).

    :meth:`catch_up` reads to the end and returns; :meth:`poll` then follows what is appended.
    It never joins a consumer group (``assign()`` only, which costs seconds on Tansu), and it
    knows it reached the end when librdkafka reports the partition's end
    (``enable.partition.eof``), not when it passes the high watermark: Tansu reports the
    watermark as the last batch's *base* offset + 1, short of the end when that batch holds
    several records. A topic that is empty at start is caught up at once. With ``record_key``
    a record whose signature does not verify (classtrace/signing.py) is logged and skipped.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        options: Mapping[str, str] | None = None,
        *,
        name: str = "registry",
        record_key: RecordKey | None = None,
    ) -> None:
        self.topic = topic
        self.record_key = record_key
        self.caught_up = False
        """True once the end the topic had at :meth:`catch_up` was read."""
        self._assigned = False
        self.consumer = make_consumer(
            bootstrap,
            f"classtrace-{name}-{uuid.uuid4().hex[:8]}",  # never joined: assign() only
            options,
            **{
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 100,
                "fetch.error.backoff.ms": 100,
            },
        )

    def end_offset(self, timeout: float = 10.0) -> int:
        """The partition's high watermark now (KafkaException when the topic is not readable)."""
        _low, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=timeout)
        return int(high)

    def catch_up(
        self, handle: RecordHandler, timeout: float = 15.0, stop: Callable[[], bool] | None = None
    ) -> int:
        """Read from the beginning to the end, calling ``handle`` per record; how many were read.

        Raises :class:`BrokerError` after ``timeout`` seconds (``math.inf``: wait as long as it
        takes, until ``stop()`` is true) and KafkaException when the topic cannot be read.
        """
        high = self.end_offset(min(timeout, 10.0))
        if not self._assigned:
            self.consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            self._assigned = True
        if high <= 0:
            self.caught_up = True
            return 0
        deadline = time.monotonic() + timeout if math.isfinite(timeout) else math.inf
        count = 0
        while not self.caught_up:
            if stop is not None and stop():
                break
            if time.monotonic() > deadline:
                raise BrokerError(f"could not read {self.topic} to its end within {timeout:.0f} s")
            count += self.poll(handle, 0.2)
        return count

    def poll(self, handle: RecordHandler, timeout: float) -> int:
        """Wait up to ``timeout`` s for the next record and ``handle`` it; 1 if there was one."""
        msg = self.consumer.poll(timeout)
        if msg is None:
            return 0
        error = msg.error()
        if error is None:
            key, value = msg.key(), msg.value()
            why = self.record_key and self.record_key.problem(self.topic, key, value, msg.headers())
            if why:  # a record a classtrace role did not write: never applied
                logger.warning(
                    "registry record ignored topic=%s offset=%s: %s", self.topic, msg.offset(), why
                )
            else:
                handle(key, value)
            return 1
        if error.code() == KafkaError._PARTITION_EOF:
            self.caught_up = True
        else:
            logger.debug("registry read error topic=%s: %s", self.topic, error)
        return 0

    def close(self) -> None:
        """Close the consumer."""
        self.consumer.close()

    def __enter__(self) -> CompactedTopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_compacted(
    bootstrap: str,
    topic: str,
    handle: RecordHandler,
    options: Mapping[str, str] | None = None,
    *,
    timeout: float = 15.0,
    name: str = "registry",
    record_key: RecordKey | None = None,
) -> int:
    """Read a compacted topic once from its beginning to its end (:class:`CompactedTopicReader`)."""
    with CompactedTopicReader(bootstrap, topic, options, name=name, record_key=record_key) as reader:
        return reader.catch_up(handle, timeout)
