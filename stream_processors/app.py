"""Builds the Faust app of ``classtrace worker``: topics, changelogged tables, settings.

The only Faust-aware module besides :mod:`stream_processors.agents`; the logic lives in
:mod:`stream_processors.processor`. Settings that matter (FIELD-NOTES): group timings that let
Tansu rebalance in ~3 s, ``producer_linger`` 5 ms so changelog and metric records share produce
requests, memory store with changelog recovery (state survives a restart through Kafka), the web
server off (``classtrace worker`` serves nothing; the dashboard has its own).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust

from classtrace.topics import DEADLETTER, EVENTS, METRICS

__all__ = ["FaustTable", "TopicOutputs", "WorkerConfig", "build_app"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process needs to know; built by ``classtrace worker`` from Settings."""

    bootstrap: str
    partitions: int
    data_dir: Path
    app_id: str = "classtrace-worker"
    """Consumer group and changelog topic prefix: workers with the same id share the partitions."""
    flush_interval_s: float = 0.2
    """Longest a record waits before its batch is processed, written and emitted (latency bound)."""
    max_batch_records: int = 1000
    """Records per batch at most; bigger batches mean fewer table writes per record."""
    summary_interval_s: float = 1.0
    window_retention_s: float = 1800.0


class FaustTable:
    """A Faust table seen as a key → bytes :class:`~stream_processors.processor.StateTable`.

    Values go to the changelog partition the processor names (the partition of the classroom's
    records) through ``Table.send_changelog``, so writing from a batch or a timer needs no
    "current event" (FIELD-NOTES: a table write inside ``take()`` otherwise raises TypeError).
    """

    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, key: str) -> bytes | None:
        value = self._table.data.get(key.encode())
        return value if value is None else bytes(value)

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        raw_key = key.encode()
        if value is None:
            self._table.data.pop(raw_key, None)
        else:
            self._table.data[raw_key] = value
        self._table.send_changelog(partition, raw_key, value, key_serializer="raw", value_serializer="raw")

    def iter_keys(self) -> Iterator[str]:
        return iter([bytes(k).decode() for k in list(self._table.data.keys())])


class TopicOutputs:
    """Outputs to classtrace.metrics.v1 and classtrace.deadletter.v1 without awaiting (send_soon)."""

    def __init__(self, metrics: Any, dead_letters: Any) -> None:
        self._metrics = metrics
        self._dead = dead_letters

    def metrics(self, key: bytes, value: bytes) -> None:
        self._metrics.send_soon(key=key, value=value)

    def dead_letter(self, key: bytes | None, value: bytes) -> None:
        self._dead.send_soon(key=key, value=value)


_FETCH_MAX_WAIT_MS = 100


def _shorten_fetch_wait() -> None:
    """Make Faust's consumer long-poll for 100 ms instead of its hard-coded 1500 ms.

    Faust passes ``fetch_max_wait_ms=1500`` to aiokafka with no setting to change it; a broker
    that holds a fetch for the whole wait when it starts empty (Tansu does) then adds up to 1.5 s
    to every record's latency. aiokafka reads the attribute when the consumer starts, so setting
    it on the created consumer is enough.
    """
    from faust.transport.drivers import aiokafka as driver

    thread_cls: Any = driver.AIOKafkaConsumerThread
    if getattr(thread_cls, "_classtrace_patched", False):
        return
    original = thread_cls._create_worker_consumer

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = _FETCH_MAX_WAIT_MS
        return consumer

    thread_cls._create_worker_consumer = create
    thread_cls._classtrace_patched = True


def build_app(config: WorkerConfig) -> faust.App:
    """The Faust app with its topics and tables; agents are attached by :mod:`.agents`."""
    _shorten_fetch_wait()
    brokers = [f"kafka://{server.strip()}" for server in config.bootstrap.split(",")]
    datadir = config.data_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        config.app_id,
        broker=brokers,
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        topic_partitions=config.partitions,
        topic_allow_declare=True,
        broker_session_timeout=6.0,
        broker_heartbeat_interval=0.5,
        broker_commit_interval=1.0,
        producer_linger=0.005,
        producer_max_request_size=8 * 1024 * 1024,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=16384,
        consumer_max_fetch_size=8 * 1024 * 1024,
    )
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    app.classtrace_topics = {  # type: ignore[attr-defined]
        "events": app.topic(EVENTS, **raw),
        "metrics": app.topic(METRICS, **raw),
        "dead_letters": app.topic(DEADLETTER, **raw),
    }
    # key_type/value_type bytes make Faust use the raw codec for the changelogs too.
    app.classtrace_tables = {  # type: ignore[attr-defined]
        name: app.Table(name, default=None, partitions=config.partitions, key_type=bytes, value_type=bytes)
        for name in ("lessons", "windows", "devices")
    }
    return app
