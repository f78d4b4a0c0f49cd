"""Tail a Kafka topic from its beginning on a background thread: the dashboard's only input path.

The live classroom state (``classtrace.metrics.v1`` and ``classtrace.alerts.v1``) and the viewer
registry (``classtrace.viewers.v1``) are rebuilt by reading their topic from offset 0 at start — a
restarted dashboard has no state of its own. Partitions are taken with ``assign()``, never a
consumer group: no ~3 s group join on Tansu, no offsets committed, and every dashboard replica
sees every record. With the stack's record key, a record not signed with it (classtrace/signing.py)
is logged and skipped: a forged viewer registration grants nothing, forged metrics show nothing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping

from prometheus_client import Counter

from classtrace.kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition, make_consumer
from classtrace.signing import RecordKey
from classtrace.v1 import pipeline_pb2
from readers.dashboard.state import LiveState

__all__ = ["OFFSET_BEGINNING", "TopicTail", "alerts_handler", "metrics_handler"]

logger = logging.getLogger(__name__)

RECORDS = Counter("classtrace_dashboard_records", "Records the dashboard applied", ["topic"])
RECORD_ERRORS = Counter(
    "classtrace_dashboard_record_errors", "Records the dashboard could not apply", ["topic"]
)
RECORDS_UNSIGNED = Counter(
    "classtrace_dashboard_records_unsigned",
    "Records the dashboard ignored: not signed with the stack's record key",
    ["topic"],
)


class TopicTail:
    """Calls ``handle(message)`` for every record of ``topic``, from the beginning, until stopped.

    ``ready`` is set once every partition reached the end it had when it was assigned, so callers
    can tell "not caught up yet" from "unknown" (a viewer token looked up during start-up).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        handle: Callable[[Message], None],
        options: Mapping[str, str] | None = None,
        name: str = "tail",
        record_key: RecordKey | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.record_key = record_key
        self.topic = topic
        self.handle = handle
        self.options = dict(options or {})
        self.ready = threading.Event()
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}:{topic}", daemon=True)

    def start(self) -> TopicTail:
        """Start the background thread (returns at once)."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    def _run(self) -> None:
        consumer = make_consumer(
            self.bootstrap,
            # Never joined (assign() only) but librdkafka wants a group id; unique per process.
            f"classtrace-dashboard-{uuid.uuid4().hex[:12]}",
            self.options,
            **{"enable.auto.commit": False, "enable.partition.eof": True},
        )
        try:
            pending = self._assign(consumer)
            while not self._stop.is_set():
                message = consumer.poll(0.1)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition() or 0)
                        if not pending:
                            self.ready.set()
                    else:
                        logger.warning("consume error topic=%s error=%s", self.topic, error)
                    continue
                if not self._signed(message):
                    continue
                try:
                    self.handle(message)
                    RECORDS.labels(self.topic).inc()
                except Exception:  # a poison record must not stop the live view
                    self.errors += 1
                    RECORD_ERRORS.labels(self.topic).inc()
                    logger.exception(
                        "cannot apply record topic=%s partition=%s offset=%s",
                        self.topic,
                        message.partition(),
                        message.offset(),
                    )
        finally:
            consumer.close()

    def _signed(self, message: Message) -> bool:
        """True unless a record key is set and ``message`` is not signed with it (logged, counted)."""
        if self.record_key is None:
            return True
        why = self.record_key.problem(self.topic, message.key(), message.value(), message.headers())
        if why is None:
            return True
        RECORDS_UNSIGNED.labels(self.topic).inc()
        logger.warning(
            "record ignored topic=%s partition=%s offset=%s: %s",
            self.topic,
            message.partition(),
            message.offset(),
            why,
        )
        return False

    def _assign(self, consumer: Consumer) -> set[int]:
        """Assign every partition from the beginning, waiting for the topic to exist."""
        while not self._stop.is_set():
            metadata = consumer.list_topics(self.topic, timeout=5.0)
            topic = metadata.topics.get(self.topic)
            if topic is not None and topic.error is None and topic.partitions:
                partitions = sorted(topic.partitions)
                consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
                logger.info("tailing topic=%s partitions=%d", self.topic, len(partitions))
                return set(partitions)
            time.sleep(0.5)  # the topic is created by `classtrace up` or the first producer
        return set()


def metrics_handler(state: LiveState, clock: Callable[[], float] = time.time) -> Callable[[Message], None]:
    """The handler that decodes a ``MetricBatch`` record and folds it into ``state``."""

    def handle(message: Message) -> None:
        batch = pipeline_pb2.MetricBatch()
        batch.ParseFromString(message.value() or b"")
        state.apply(batch, now_ms=int(clock() * 1000))

    return handle


def alerts_handler(state: LiveState, clock: Callable[[], float] = time.time) -> Callable[[Message], None]:
    """The handler that decodes an ``Alert`` record and folds it into ``state``."""

    def handle(message: Message) -> None:
        alert = pipeline_pb2.Alert()
        alert.ParseFromString(message.value() or b"")
        state.apply_alerts([alert], now_ms=int(clock() * 1000))

    return handle
