"""Builds the Faust app of ``classtrace worker``: topics, changelogged tables, settings.

The only Faust-aware modules besides :mod:`stream_processors.agents`,
:mod:`stream_processors.batching` (the agent's batches: a ``Stream`` subclass set with Faust's
``Stream=`` setting) and :mod:`stream_processors.delivery` (the one shim of a Faust method, for
a recovery race that loses records; applied here, in :func:`build_app`); the logic lives in
:mod:`stream_processors.processor`. Settings that matter (docs/FIELD-NOTES.md): group timings that let
Tansu rebalance in ~3 s, ``producer_linger`` 5 ms so changelog and metric records share produce
requests, memory store with changelog recovery (state survives a restart through Kafka), the web
server off (``classtrace worker`` serves nothing; the dashboard has its own).

Faust internals still touched here, none of them patched: :class:`RecordWriter` takes the
aiokafka producer with ``Producer._ensure_producer()`` (Faust has no public accessor) to send
whole record batches, and :class:`FaustTable` reads and writes the memory store's dict under
``Table.data``. The consumer's fetch wait is Faust's hard-coded 1500 ms (no setting exists in
0.15.3; the patch of ``AIOKafkaConsumerThread._create_worker_consumer`` that set 100 ms is gone).
On a broker that holds an empty fetch for the whole wait (Tansu), a record that arrives while
the worker is idle can wait up to that long, and a catch-up stalls about 1.5 s once (likely a
held fetch of the partitions already read, with the rest queued behind it; not traced): on
bench/processors.py's 200k events the worker ran 117–126k events/s with the patch, 82–85k
without (two runs each).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust

from classtrace.errors import ConfigError
from classtrace.signing import RecordKey
from classtrace.topics import ALERTS, DEADLETTER, EVENTS, METRICS
from stream_processors.batching import BatchingStream
from stream_processors.delivery import seek_with_flow_stopped

__all__ = ["FaustTable", "RecordWriter", "TopicOutputs", "WorkerConfig", "build_app", "tune_gc"]

logger = logging.getLogger(__name__)

_Pending = tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]]]
"""A queued record: key, value, headers."""


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process needs to know; built by ``classtrace worker`` from Settings."""

    bootstrap: str
    partitions: int
    data_dir: Path
    app_id: str = "classtrace-worker"
    """Consumer group and changelog topic prefix: workers with the same id share the partitions."""
    flush_interval_s: float = 0.2
    """``within`` of Faust's ``take_events``: a record waits about this long at most before its
    batch is processed, written and emitted (stream_processors.batching)."""
    max_batch_records: int = 2000
    """Records per batch at most. A batch writes each classroom it touched once, so a bigger one
    writes less per record when a backlog is read (2000 against 1000: ~15 % less CPU per event on
    bench/processors.py's records); it also holds the event loop longer, ~0.3–0.5 s for 2000
    records of 100 events. Below saturation ``flush_interval_s`` closes batches long before."""
    summary_interval_s: float = 1.0
    window_retention_s: float = 1800.0
    state_horizon_s: float = 7 * 86_400.0
    """Lessons and devices are deleted this long after their latest event (docs/DESIGN.md §10)."""
    state_scan_s: float = 600.0
    """Least seconds between two passes over the whole lesson table for values beyond the horizon."""
    kafka_options: Mapping[str, str] = field(default_factory=dict)
    """librdkafka client properties from CLASSTRACE_KAFKA_*: the SASL/TLS ones are given to
    Faust's aiokafka clients too (:func:`broker_credentials`)."""
    record_key: RecordKey | None = None
    """The stack's record key: events records must carry its signature, and the worker signs the
    metrics and dead letters it writes (classtrace/signing.py). None: no signing, no check."""
    keep_raw: bool = False
    """Dead letters keep the record's bytes (CLASSTRACE_DEADLETTER_KEEP_RAW)."""


def broker_credentials(options: Mapping[str, str]) -> faust.types.auth.CredentialsT | None:
    """Faust credentials for the librdkafka security properties every other role uses.

    One set of settings for every client: ``security.protocol`` SASL_PLAINTEXT or SASL_SSL with
    ``sasl.mechanism`` / ``sasl.username`` / ``sasl.password`` (infra/kafka/acls.py gives the
    worker its own principal), SSL alone as an SSL context. PLAINTEXT (the embedded broker): None.
    """
    protocol = options.get("security.protocol", "PLAINTEXT").upper()
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=options.get("ssl.ca.location"))
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=options.get("sasl.username"),
            password=options.get("sasl.password"),
            mechanism=options.get("sasl.mechanism", "PLAIN").upper(),
            ssl_context=context,
        )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if protocol != "PLAINTEXT":
        raise ConfigError("security.protocol", f"{protocol!r} is not one the worker can use")
    return None


class RecordWriter:
    """Records of one processed batch, sent as one Kafka record batch per topic-partition.

    Faust's own path (``Table.send_changelog`` / ``Topic.send_soon``) costs ~100–200 µs of Python
    per record (a FutureMessage, the producer buffer task, a coroutine per ``producer.send``) —
    more than the events it stores, since a batch writes a lesson, its windows and a device
    book per classroom. Here a flush appends the records to aiokafka ``BatchBuilder``s and
    submits each with ``send_batch``: same topics, partitions, keys and values, a few µs each.

    Guarantee kept: the agent awaits :meth:`send` (records accepted by the producer) before it
    acks the batch's events, and Faust flushes the producer before committing offsets, so an
    offset is committed only once the changelog records of its events are written.
    """

    def __init__(self, app: faust.App) -> None:
        self._app = app
        self._pending: dict[tuple[str, int], list[_Pending]] = {}
        self._partitions: dict[tuple[str, bytes], int] = {}

    def add(
        self,
        topic: str,
        partition: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        """Queue a record; ``partition`` None: the producer's key partitioner picks it."""
        if partition is None:
            partition = self._key_partition(topic, key or b"")
        self._pending.setdefault((topic, partition), []).append((key, value, headers or []))

    def _key_partition(self, topic: str, key: bytes) -> int:
        found = self._partitions.get((topic, key))
        if found is None:
            found = self._partitions[(topic, key)] = self._app.producer.key_partition(topic, key).partition
        return found

    async def send(self) -> None:
        """Hand every queued record to the producer (one batch per partition, concurrently)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        producer: Any = self._app.producer._ensure_producer()  # type: ignore[attr-defined]
        await asyncio.gather(*(self._send_tp(producer, tp, records) for tp, records in pending.items()))

    @staticmethod
    async def _send_tp(producer: Any, tp: tuple[str, int], records: list[_Pending]) -> None:
        """Send and wait until the broker acknowledged every batch.

        aiokafka's ``send_batch`` returns once the batch is queued, with a future of its delivery.
        Waiting for those futures is what keeps an offset from being committed before the state
        it produced: a worker killed in between would otherwise restart from saved state that
        lacks the events its committed offsets say were counted (seen: a kill -9 under load lost
        counts in 39 of 7,791 lessons, docs/FAULTS.md).
        """
        topic, partition = tp
        deliveries = []
        # The last record goes in a batch of its own. Tansu reports a partition's high watermark
        # as its last batch's *base* offset + 1 (docs/FIELD-NOTES.md), and Faust restores a table
        # only up to that watermark: records after the first of a final multi-record batch would
        # be missing from the restored state after a restart (their events then counted nowhere).
        *head, last = records
        for group in (head, [last]):
            if not group:
                continue
            batch = producer.create_batch()
            for key, value, headers in group:
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # full
                    batch.close()
                    deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None, headers=headers)
            batch.close()
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*deliveries)


class FaustTable:
    """A Faust table seen as a key → bytes :class:`~stream_processors.processor.StateTable`.

    Values go to the changelog partition the processor names (the partition of the classroom's
    records) through the :class:`RecordWriter`, so writing from a batch or a timer needs no
    "current event" (docs/FIELD-NOTES.md: a table write inside ``take()`` otherwise raises TypeError).
    """

    def __init__(self, table: Any, writer: RecordWriter) -> None:
        self._table = table
        self._writer = writer
        self._changelog: str = table.changelog_topic_name

    def _data(self) -> Any:
        """The store's mapping; for the memory store its dict itself.

        The memory store is a Mapping over a dict whose ``get`` of a missing key raises and
        catches a KeyError: most lookups of a new window or lesson miss. Writing to the dict is
        what the store's own ``__setitem__`` does.
        """
        store = self._table.data
        inner = getattr(store, "data", None)
        return inner if inner.__class__ is dict else store

    def get(self, key: str) -> bytes | None:
        value = self._data().get(key.encode())
        return value if value is None else bytes(value)

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        raw_key = key.encode()
        if value is None:
            self._data().pop(raw_key, None)
        else:
            self._data()[raw_key] = value
        self._writer.add(self._changelog, partition, raw_key, value)

    def iter_keys(self) -> Iterator[str]:
        return iter([bytes(k).decode() for k in list(self._data().keys())])


class TopicOutputs:
    """Outputs to classtrace.metrics.v1, classtrace.alerts.v1 and classtrace.deadletter.v1 through
    the RecordWriter, signed with ``record_key`` when there is one: the dashboard and the sink take
    only signed metrics and alerts, so a record forged on the broker shows no false figures
    (classtrace/signing.py)."""

    def __init__(self, writer: RecordWriter, record_key: RecordKey | None = None) -> None:
        self._writer = writer
        self._key = record_key

    def metrics(self, key: bytes, value: bytes) -> None:
        headers = self._key.headers(METRICS, key, value) if self._key else None
        self._writer.add(METRICS, None, key, value, headers)

    def alerts(self, key: bytes, value: bytes) -> None:
        headers = self._key.headers(ALERTS, key, value) if self._key else None
        self._writer.add(ALERTS, None, key, value, headers)

    def dead_letter(self, key: bytes | None, value: bytes) -> None:
        headers = self._key.headers(DEADLETTER, key, value) if self._key else None
        self._writer.add(DEADLETTER, None, key, value, headers)


_GC_THRESHOLDS = (20_000, 50, 20)


def tune_gc() -> None:
    """Collect cycles less often, and never walk what exists at start-up again.

    The worker allocates many short-lived containers per record (Faust's messages and events,
    the processor's tuples) and holds a large, acyclic state; with CPython's default thresholds
    (700, 10, 10) collections took ~9 % of the processor's time on bench/processors.py's records,
    ~4.5 % with these (measured with gc.callbacks). ``gc.freeze`` moves the modules, Faust's
    services and the app built so far to the permanent generation.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


def build_app(config: WorkerConfig) -> faust.App:
    """The Faust app with its topics and tables; agents are attached by :mod:`.agents`."""
    seek_with_flow_stopped()  # the one shim of Faust (stream_processors.delivery)
    brokers = [f"kafka://{server.strip()}" for server in config.bootstrap.split(",")]
    datadir = config.data_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        config.app_id,
        broker=brokers,
        broker_credentials=broker_credentials(config.kafka_options),
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
        # a RecordWriter batch per partition: big enough for a flush, under Kafka's 1 MB batch limit
        producer_max_batch_size=512 * 1024,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=16384,
        consumer_max_fetch_size=8 * 1024 * 1024,
        Stream=BatchingStream,  # the agent's batches (stream_processors.batching)
        # Tansu 0.6.0 reports a partition's high watermark as the last record batch's base
        # offset + 1, so a worker that read a changelog (as standby or active) to its real end
        # finds its offsets "beyond" the watermark at the next rebalance, and Faust's check
        # crashes the recovery (ConsistencyError). The check guards a persisted store's files
        # against a deleted topic; the memory store persists nothing.
        recovery_consistency_check=False,
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
        "alerts": app.topic(ALERTS, **raw),
        "dead_letters": app.topic(DEADLETTER, **raw),
    }
    # key_type/value_type bytes make Faust use the raw codec for the changelogs too.
    app.classtrace_tables = {  # type: ignore[attr-defined]
        name: app.Table(name, default=None, partitions=config.partitions, key_type=bytes, value_type=bytes)
        for name in ("lessons", "windows", "devices")
    }
    return app
