"""The sink service: Kafka topics → ClickHouse tables, at least once, duplicates harmless.

Two threads per service::

    consume thread   poll → decode → the open Batch ───────────┐ due (rows or age)
                                                               ▼ handoff queue (1 slot)
    insert thread    one insert per table (idempotent token) → commit the batch's offsets

The consume thread alone touches the consumer's poll/pause/resume; the insert thread only
commits (librdkafka handles are thread-safe). Decoding the next batch overlaps the insert of the
previous one. When ClickHouse is down the insert thread backs off and retries, the slot stays
full, and the consume thread pauses its partitions and keeps polling (so it stays in the group
without reading more): memory stays bounded to three batches, nothing is committed, nothing lost.

Offsets are committed only after every block of a batch landed, so a crash between insert and
commit delivers the records again; their rows carry the same deduplication token (same offset
ranges) or, when the batch was cut differently, collapse under ``FINAL``. On a rebalance the open
batch is dropped (the next owner reads it again from the committed offsets).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from google.protobuf.message import Message

from classtrace.erasure import Erasure, ErasureFollower, ErasureSet
from classtrace.kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
    ensure_topics,
    make_consumer,
)
from classtrace.signing import RecordKey
from classtrace.topics import ERASURES, topic_specs
from classtrace.v1 import events_pb2 as pb
from sinks.base import InsertClient
from sinks.batcher import TABLE_ORDER, Batch, BatchPolicy, SinkTopics
from sinks.clickhouse_writer import ClickHouseWriter
from sinks.erasures import ErasureExecutor
from sinks.errors import SinkStopped
from sinks.metrics import sink_metrics
from sinks.rows import add_dead_letter, refusal_code

__all__ = ["SinkHooks", "SinkService"]

logger = logging.getLogger(__name__)

_LAG_EVERY = 5.0  # seconds between lag gauge updates (watermarks are cached by librdkafka)
_FETCH_WAIT_MS = 100
"""How long the broker may hold a fetch that finds no data (librdkafka's default is 500 ms).

The sink reads three topics, two of them (metrics, dead letters) mostly idle. A fetch that holds
only idle partitions — the first one after an assignment, when those partitions' offsets are
resolved before the events' — waited the full 500 ms on Tansu before the events partitions were
fetched at all: 0.5 s of every start, a third of bench/sink.py's 300k-event run. At 100 ms an
idle sink sends ~10 small fetches a second per broker.
"""


@dataclass
class SinkHooks:
    """Test seams: ``after_insert(batch)`` runs after a batch's inserts, before its commit."""

    after_insert: Callable[[Batch], None] | None = None
    after_commit: Callable[[Batch], None] | None = None


@dataclass
class _State:
    assignment: list[TopicPartition] = field(default_factory=list)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)


class SinkService:
    """Consumes the events, metrics and dead-letter topics and writes the four tables of docs/DESIGN.md §6.

    ``client`` comes from :func:`classtrace.clickhouse.connect` with migrations applied; the
    service never opens ClickHouse itself, so the process owning chDB can run it (``classtrace
    up``). ``start()`` returns at once; ``stop()`` drains: the open batch is inserted and
    committed, unless ClickHouse stays unavailable for ``stop_grace`` seconds, in which case it is
    left uncommitted for redelivery.
    """

    def __init__(
        self,
        client: InsertClient,
        bootstrap: str,
        kafka_options: Mapping[str, str] | None = None,
        database: str = "classtrace",
        group: str = "classtrace-sink",
        *,
        topics: SinkTopics | None = None,
        policy: BatchPolicy | None = None,
        stop_grace: float = 10.0,
        insert_settings: Mapping[str, Any] | None = None,
        consumer_overrides: Mapping[str, Any] | None = None,
        hooks: SinkHooks | None = None,
        record_key: RecordKey | None = None,
        keep_raw: bool = False,
    ) -> None:
        self.client = client
        self.record_key = record_key
        """Records not signed with it are dead letters, never rows (classtrace/signing.py)."""
        self.keep_raw = keep_raw
        """Dead letters keep the rejected bytes (CLASSTRACE_DEADLETTER_KEEP_RAW); off = digest only."""
        self.bootstrap = bootstrap
        self.kafka_options = dict(kafka_options or {})
        self.database = database
        self.group = group
        self.topics = topics or SinkTopics()
        self.policy = policy or BatchPolicy()
        self.stop_grace = stop_grace
        self.hooks = hooks or SinkHooks()
        self.metrics = sink_metrics()
        self._consumer_overrides = dict(consumer_overrides or {})
        self._stopping = threading.Event()
        self._writer = ClickHouseWriter(
            client,
            database,
            self.metrics,
            stopping=self._stopping,
            stop_grace=stop_grace,
            settings=insert_settings,
        )
        self._handoff: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        # Inserted batches whose offsets the consume thread commits: every consumer call stays on
        # that one thread. A synchronous commit from the insert thread while the consume thread
        # sits in consume() stalled for good with librdkafka 2.16 (rows inserted, never committed,
        # and no further fetches).
        self._to_commit: queue.SimpleQueue[Batch] = queue.SimpleQueue()
        self._consumer: Consumer | None = None
        self._erasures: ErasureFollower | None = None
        self._batch = self._new_batch()
        self._state = _State()
        self._threads: list[threading.Thread] = []
        self._failure: BaseException | None = None
        self._abandoned = False
        self._last_lag = 0.0
        self._generation = 0
        self._executor = ErasureExecutor(client, database)
        self._unexecuted: list[Erasure] = []  # failed to run: retried after the next batch

    # --- the contract with `classtrace up` -------------------------------------------------------

    def start(self) -> None:
        """Subscribe and start the consume and insert threads; returns immediately."""
        if self._threads:
            raise RuntimeError("SinkService.start() called twice")
        self._follow_erasures()
        self._consumer = make_consumer(
            self.bootstrap,
            self.group,
            self.kafka_options,
            **{
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                # a default: CLASSTRACE_KAFKA_fetch.wait.max.ms (kafka_options) still decides
                "fetch.wait.max.ms": self.kafka_options.get("fetch.wait.max.ms", _FETCH_WAIT_MS),
                **self._consumer_overrides,
            },
        )
        self._consumer.subscribe(self.topics.all(), on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._threads = [
            threading.Thread(
                target=self._guard(self._consume_loop), name="classtrace-sink-consume", daemon=True
            ),
            threading.Thread(
                target=self._guard(self._insert_loop), name="classtrace-sink-insert", daemon=True
            ),
        ]
        for thread in self._threads:
            thread.start()
        logger.info(
            "sink started group=%s topics=%s database=%s",
            self.group,
            ",".join(self.topics.all()),
            self.database,
        )

    def _follow_erasures(self) -> None:
        """Know every erasure before the first record is read, and run any not yet executed.

        The ledger is a contract topic, created here if missing (idempotent), so a sink never
        inserts a row of a person it was asked to forget.
        """
        spec = next(t for t in topic_specs() if t.name == ERASURES)
        ensure_topics(self.bootstrap, 1, self.kafka_options, [replace(spec, name=self.topics.erasures)])
        self._erasures = ErasureFollower(
            self.bootstrap,
            self.topics.erasures,
            self.kafka_options,
            name=f"{self.group}-erasures",
            record_key=self.record_key,
        )
        for erasure in self._erasures.start():
            if not self._executor.done(erasure):
                self._executor.execute(erasure)
        self._batch = self._new_batch()

    def alive(self) -> bool:
        """True while both threads run and neither has failed."""
        return bool(self._threads) and self._failure is None and all(t.is_alive() for t in self._threads)

    def stop(self, timeout: float | None = None) -> None:
        """Drain and stop: flush the open batch, insert, commit, close the consumer."""
        self._stopping.set()
        deadline = time.monotonic() + (timeout if timeout is not None else self.stop_grace + 30.0)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.error("sink thread did not stop in time thread=%s", thread.name)
        if self._erasures is not None:
            self._erasures.stop()
        logger.info("sink stopped group=%s", self.group)

    @property
    def failure(self) -> BaseException | None:
        """The exception that stopped a thread, if any."""
        return self._failure

    # --- consume thread -----------------------------------------------------------------------

    def _consume_loop(self) -> None:
        consumer = self._require_consumer()
        try:
            while not self._stopping.is_set():
                self._take_erasures()
                self._poll(consumer, 0.05)
                self._drain_commits()
                if self._batch.due(self.policy):
                    self._hand_off(consumer)
                self._update_lag(consumer)
            if self._batch.records and self._failure is None:
                self._put_final()
        finally:
            self._handoff_sentinel()
            for thread in self._threads[1:]:
                thread.join(self.stop_grace + 30.0)
            self._drain_commits()
            with contextlib.suppress(Exception):
                consumer.close()

    def _poll(self, consumer: Consumer, timeout: float, hand_off: bool = True) -> None:
        """Read what the consumer has into the open batch, handing it off as soon as it is full.

        ``hand_off=False`` while waiting for the handoff slot (no nested hand-offs): records that
        arrive then (from partitions assigned meanwhile) simply join the waiting batch.
        """
        messages = consumer.consume(num_messages=500, timeout=timeout)
        if not messages:
            return
        now = time.time()
        records = self.metrics.records
        max_rows = self.policy.max_rows
        generation = self._generation
        for msg in messages:
            if self._generation != generation:
                # Revoked during a hand-off in this loop: the rest of these records belong to the
                # old assignment and the open batch starts afresh. Adding them would commit past
                # records that were dropped, not inserted.
                return
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                if err.code() != KafkaError._PARTITION_EOF:
                    logger.warning("consumer error group=%s error=%s", self.group, err)
                continue
            topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
            records.labels(topic).inc()
            self._batch.add(topic, partition, offset, msg.value(), now, msg.headers(), msg.key())
            if hand_off and self._batch.rows >= max_rows:
                self._hand_off(consumer)

    def _hand_off(self, consumer: Consumer) -> None:
        """Queue the due batch; while the slot is full, keep polling with partitions paused."""
        batch = self._batch
        paused: list[TopicPartition] = []
        try:
            while not self._stopping.is_set():
                try:
                    self._handoff.put(batch, timeout=0.05)
                except queue.Full:
                    paused = self._pause(consumer, paused)
                    self._poll(consumer, 0.2, hand_off=False)  # stays in the group; paused → no records
                    self._drain_commits()
                    if self._batch is not batch:  # revoked meanwhile: the batch was dropped
                        return
                    continue
                self._batch = self._new_batch()
                return
        finally:
            if paused:
                with contextlib.suppress(KafkaException):
                    consumer.resume(consumer.assignment())

    def _pause(self, consumer: Consumer, paused: list[TopicPartition]) -> list[TopicPartition]:
        assignment = list(consumer.assignment())
        if assignment:
            consumer.pause(assignment)
            if not paused:
                logger.info("ClickHouse behind: partitions paused group=%s", self.group)
        return assignment or paused

    def _put_final(self) -> None:
        try:
            self._handoff.put(self._batch, timeout=self.stop_grace)
        except queue.Full:
            logger.warning(
                "stopping with a batch not inserted; it stays uncommitted records=%d", self._batch.records
            )

    def _handoff_sentinel(self) -> None:
        while True:
            try:
                self._handoff.put(None, timeout=0.5)
                return
            except queue.Full:
                if not any(t.is_alive() for t in self._threads[1:]):
                    return

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._state.assignment = list(partitions)
        logger.info("partitions assigned group=%s partitions=%s", self.group, _names(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drain_commits()  # what is inserted is committed while the partitions are still ours
        # Eager rebalance: everything is revoked; the next owner re-reads from the committed
        # offsets, so the rows of the open batch are dropped rather than inserted twice.
        logger.info(
            "partitions revoked group=%s partitions=%s dropped_records=%d",
            self.group,
            _names(partitions),
            self._batch.records,
        )
        self._batch = self._new_batch()
        self._generation += 1
        self._state.assignment = []

    def _update_lag(self, consumer: Consumer) -> None:
        now = time.monotonic()
        if now - self._last_lag < _LAG_EVERY:
            return
        self._last_lag = now
        unknown = [
            tp for tp in self._state.assignment if (tp.topic, tp.partition) not in self._state.committed
        ]
        if unknown:
            with contextlib.suppress(KafkaException):
                for tp in consumer.committed(unknown, timeout=2.0):
                    if tp.offset >= 0:
                        self._state.committed[(tp.topic, tp.partition)] = tp.offset
        for tp in self._state.assignment:
            try:
                low, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high < 0:
                continue
            done = self._state.committed.get((tp.topic, tp.partition), low)
            self.metrics.lag.labels(self.group, tp.topic, str(tp.partition)).set(max(0, high - done))

    # --- insert thread ------------------------------------------------------------------------

    def _insert_loop(self) -> None:
        while True:
            batch = self._handoff.get()
            if batch is None:
                return
            if self._abandoned:
                continue
            try:
                self._flush(batch)
            except SinkStopped as exc:
                logger.warning("%s", exc)
                self._abandoned = True

    def _flush(self, batch: Batch) -> None:
        dead = batch.blocks["dead_letters"]
        now = time.time()
        refused = self._writer.write_events(batch.events, batch.token("events"))
        for table in TABLE_ORDER[:-1]:  # every table but dead_letters, which takes their refusals
            if table == "events":
                if refused is None:
                    continue
                block = batch.event_rows(now)  # the refused protobuf block, as bisectable rows
            else:
                block = batch.blocks[table]
            for index, reason in self._writer.write(block, batch.token(table)):
                self.metrics.dead_letters.labels("refused").inc()
                message = block.messages[index]
                add_dead_letter(
                    dead,
                    now,
                    f"refused by ClickHouse ({table}): {refusal_code(reason)}",
                    message.SerializeToString() if isinstance(message, Message) else bytes(message),
                    block.sources[index],
                    event=message if isinstance(message, pb.Event) else None,
                    keep_raw=self.keep_raw,
                )
        for index, reason in self._writer.write(dead, batch.token("dead_letters")):
            # Nothing further to send it to: log loudly with where it came from.
            logger.error(
                "dead letter refused by ClickHouse, dropped source=%s error=%s",
                dead.sources[index],
                refusal_code(reason),
            )
        self._execute_erasures(batch.erasures)
        if self.hooks.after_insert is not None:
            self.hooks.after_insert(batch)
        self._to_commit.put(batch)

    def _take_erasures(self) -> None:
        """New ledger records join the open batch: they run once the rows read before them landed."""
        if self._erasures is not None:
            self._batch.erasures.extend(self._erasures.drain())

    def _execute_erasures(self, erasures: list[Erasure]) -> None:
        """Run the batch's erasures (insert thread); one that fails is retried after the next batch."""
        todo, self._unexecuted = [*self._unexecuted, *erasures], []
        for erasure in todo:
            try:
                self._executor.execute(erasure)
            except Exception:
                logger.exception(
                    "erasure failed, retried after the next batch erasure_id=%s", erasure.erasure_id
                )
                self._unexecuted.append(erasure)

    def _drain_commits(self) -> None:
        """Commit the offsets of every batch the insert thread has landed (consume thread only)."""
        while True:
            try:
                batch = self._to_commit.get_nowait()
            except queue.Empty:
                return
            self._commit(batch)
            if self.hooks.after_commit is not None:
                self.hooks.after_commit(batch)

    def _commit(self, batch: Batch) -> None:
        offsets = batch.commit_offsets()
        if not offsets:
            return
        consumer = self._require_consumer()
        try:
            consumer.commit(offsets=[TopicPartition(t, p, o) for t, p, o in offsets], asynchronous=False)
        except KafkaException as exc:
            # A rebalance took the partitions: the new owner reads these records again (their
            # rows are already in: FINAL collapses them). Never fatal, never data loss.
            self.metrics.commit_failures.labels(self.group).inc()
            logger.warning("commit failed group=%s error=%s", self.group, exc)
            return
        self.metrics.commits.labels(self.group).inc()
        for t, p, o in offsets:
            self._state.committed[(t, p)] = o
        logger.debug("batch committed group=%s records=%d rows=%d", self.group, batch.records, batch.rows)

    # --- helpers --------------------------------------------------------------------------------

    def _new_batch(self) -> Batch:
        erased = self._erasures.known if self._erasures is not None else ErasureSet()
        return Batch(
            self.topics, self.metrics, erased=erased, record_key=self.record_key, keep_raw=self.keep_raw
        )

    def _require_consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("SinkService not started")
        return self._consumer

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                self._failure = exc
                self._stopping.set()
                logger.exception("sink thread failed group=%s", self.group)

        return run


def _names(partitions: list[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
