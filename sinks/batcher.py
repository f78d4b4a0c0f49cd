"""Size- and time-bounded batches of Kafka records, ready for one insert per table.

A :class:`Batch` takes each record as it arrives (so the work overlaps the previous batch's
insert): event records are decoded (upb) and kept as the EventBatch bytes they are, for
ClickHouse to parse (:mod:`sinks.protobuf_events`); the other topics become rows. Events are not
validated again: every writer of classtrace.events.v1 (gateway, SDK) validates first, so the sink
guards only against bytes it cannot decode — such a record becomes a dead letter, never a crash.
It also remembers the offset range it read per partition: those ranges are what is committed
once every block landed, and what the deduplication tokens are derived from.

A batch is due (:meth:`Batch.due`) when it holds ``max_rows`` rows or its first record is
``max_wait`` seconds old. Defaults: 100k rows or 2 s. An insert costs ~12 ms whatever its size
(docs/FIELD-NOTES.md), and every insert is a part that MergeTree merges again later: going from 20k-row
1 s batches to these cut the sink process's CPU (sink + chDB inserts and merges) from 16.5 to
13.1 µs per event in a 60 s load test. A row still waits at most ~2 s, well inside the 5 s
produced → visible target (bench/sink.py measures it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from classtrace.access import AccessRecord
from classtrace.codec import decode_batch, decode_message
from classtrace.erasure import Erasure, ErasureSet
from classtrace.errors import DecodeError
from classtrace.signing import Headers, RecordKey
from classtrace.topics import ACCESS, ALERTS, DEADLETTER, ERASURES, EVENTS, METRICS
from classtrace.v1 import pipeline_pb2 as ppb
from sinks.clickhouse_writer import dedup_token
from sinks.metrics import SinkMetrics
from sinks.protobuf_events import RawEvents
from sinks.rows import (
    Block,
    add_access_record,
    add_alert,
    add_dead_letter,
    add_dead_letter_record,
    add_metric_batch,
    new_block,
)

__all__ = ["TABLE_ORDER", "Batch", "BatchPolicy", "SinkTopics"]

logger = logging.getLogger(__name__)

TABLE_ORDER = (
    "events", "lesson_summary", "metric_points", "access_log", "device_status", "alerts", "dead_letters",
)  # fmt: skip
"""Insert order of a flush; dead_letters last, since refused rows of the others join it."""


@dataclass(frozen=True)
class SinkTopics:
    """The topics the sink reads (the contract names by default; tests use unique ones)."""

    events: str = EVENTS
    metrics: str = METRICS
    deadletter: str = DEADLETTER
    erasures: str = ERASURES
    """The erasure ledger: followed from its beginning (:class:`~classtrace.erasure.ErasureFollower`),
    not consumed with the group, so every restart knows every erasure."""
    access: str = ACCESS
    """The access log (:mod:`classtrace.access`): rows of ``access_log``."""
    alerts: str = ALERTS
    """Alerts the worker raised and cleared: rows of ``alerts``."""

    def all(self) -> list[str]:
        """The topics the sink's consumer group reads."""
        return [self.events, self.metrics, self.deadletter, self.access, self.alerts]


@dataclass(frozen=True)
class BatchPolicy:
    """When a batch is flushed: ``max_rows`` rows or ``max_wait`` seconds after its first record."""

    max_rows: int = 100_000
    max_wait: float = 2.0


@dataclass
class Batch:
    """Rows of a run of records, one :class:`Block` per table, and the offsets they came from.

    Events are kept as the EventBatch bytes of their records (:attr:`events`), which ClickHouse parses
    itself (:mod:`sinks.protobuf_events`); ``blocks["events"]`` stays empty unless that insert is
    refused and the sink falls back to rows (:meth:`event_rows`).
    """

    topics: SinkTopics
    metrics: SinkMetrics
    blocks: dict[str, Block] = field(default_factory=lambda: {t: new_block(t) for t in TABLE_ORDER})
    events: RawEvents = field(default_factory=RawEvents)
    offsets: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    """(topic, partition) → [first offset, last offset] read into this batch."""
    records: int = 0
    opened: float = 0.0
    erased: ErasureSet = field(default_factory=ErasureSet)
    """Everyone erased so far: their events are dropped from the batch as it is read."""
    erasures: list[Erasure] = field(default_factory=list)
    """Erasures learned while this batch was open: executed once its rows are inserted."""
    record_key: RecordKey | None = None
    """The stack's record key: a record of the events, metrics or dead-letter topic not signed
    with it was written by whoever reached the broker, not by a classtrace role, and becomes a
    dead letter (classtrace/signing.py). None: no check (Kafka ACLs guard the topics)."""
    keep_raw: bool = False
    """Dead letters keep the rejected bytes in ``raw_kept`` (CLASSTRACE_DEADLETTER_KEEP_RAW); off,
    a letter from any writer is stored as digest and length only."""

    @property
    def rows(self) -> int:
        return len(self.events) + sum(len(b) for b in self.blocks.values())

    def event_rows(self, now_s: float | None = None) -> Block:
        """The batch's events as a row block (the fallback when the protobuf insert is refused)."""
        block = self.blocks["events"]
        if not len(block):
            now = time.time() if now_s is None else now_s
            block = self.blocks["events"] = self.events.rows(now)
        return block

    def due(self, policy: BatchPolicy, now: float | None = None) -> bool:
        if not self.records:
            return bool(self.erasures)  # an erasure waits for no events
        if self.rows >= policy.max_rows:
            return True
        return (time.monotonic() if now is None else now) - self.opened >= policy.max_wait

    def add(
        self,
        topic: str,
        partition: int,
        offset: int,
        value: bytes | None,
        now_s: float | None = None,
        headers: Headers = None,
        key: bytes | None = None,
    ) -> None:
        """Decode one record into rows; a record that does not decode, or is not signed with the
        record key, becomes a dead letter."""
        if not self.records:
            self.opened = time.monotonic()
        self.records += 1
        self.offsets.setdefault((topic, partition), [offset, offset])[1] = offset
        now = time.time() if now_s is None else now_s
        source = (topic, partition, offset)
        raw = value or b""
        blocks = self.blocks
        if self._forged(source, key, value, headers, now):
            return
        try:
            if topic == self.topics.events:
                # Decoded only to know it decodes (and its size): the bytes go on as they are.
                decoded = decode_batch(raw, topic=topic, partition=partition, offset=offset)
                n = len(decoded.events)
                if n and self.erased and self.erased.scrub(decoded.events, "drop"):
                    n, raw = len(decoded.events), decoded.SerializeToString()
                if n:
                    self.events.add(raw, source, n)
            elif topic == self.topics.metrics:
                batch = decode_message(ppb.MetricBatch, raw, topic=topic, partition=partition, offset=offset)
                if self.erased:
                    self.erased.scrub_summaries(batch.summaries)
                add_metric_batch(
                    batch, source, blocks["lesson_summary"], blocks["metric_points"], blocks["device_status"]
                )
            elif topic == self.topics.deadletter:
                letter = decode_message(ppb.DeadLetter, raw, topic=topic, partition=partition, offset=offset)
                add_dead_letter_record(letter, source, blocks["dead_letters"], keep_raw=self.keep_raw)
            elif topic == self.topics.access:
                add_access_record(AccessRecord.decode(raw), raw, source, blocks["access_log"])
            elif topic == self.topics.alerts:
                alert = decode_message(ppb.Alert, raw, topic=topic, partition=partition, offset=offset)
                add_alert(alert, source, blocks["alerts"])
            else:
                logger.warning(
                    "record of an unexpected topic ignored topic=%s partition=%d", topic, partition
                )
        except DecodeError as exc:
            logger.warning(
                "undecodable record dead-lettered topic=%s partition=%d offset=%d", topic, partition, offset
            )
            self.metrics.dead_letters.labels("decode").inc()
            add_dead_letter(blocks["dead_letters"], now, str(exc), raw, source, keep_raw=self.keep_raw)

    def _forged(
        self,
        source: tuple[str, int, int],
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        now: float,
    ) -> bool:
        """Dead-letter a record of a signed topic not signed with the record key; True if so."""
        topic = source[0]
        if self.record_key is None or topic not in self.topics.all():
            return False
        why = self.record_key.problem(topic, key, value, headers)
        if why is None:
            return False
        logger.warning("record dead-lettered topic=%s partition=%d offset=%d: %s", *source, why)
        self.metrics.dead_letters.labels("unsigned").inc()
        add_dead_letter(self.blocks["dead_letters"], now, why, value or b"", source, keep_raw=self.keep_raw)
        return True

    def ranges(self) -> list[tuple[str, int, int, int]]:
        """``(topic, partition, first, last)`` of every partition read."""
        return [(t, p, a, b) for (t, p), (a, b) in self.offsets.items()]

    def token(self, table: str) -> str:
        return dedup_token(table, self.ranges())

    def commit_offsets(self) -> list[tuple[str, int, int]]:
        """``(topic, partition, next offset)`` to commit once every block landed."""
        return [(t, p, b + 1) for (t, p), (_a, b) in self.offsets.items()]
