"""One idempotent insert per block, with retry on outages and bisection on refused rows.

Idempotency: every insert carries ``insert_deduplication_token`` derived from the Kafka offset
ranges the block came from (:func:`dedup_token`). A retry after a timeout whose insert actually
landed, or the same records consumed again after a crash, is dropped by ClickHouse (replicated
tables always; plain MergeTree with ``non_replicated_deduplication_window``, migration 0005). What
a different token lets through collapses under ``FINAL`` (ReplacingMergeTree keys).

Failures are classified (:func:`classify`): transient ones (no code = transport; overload,
timeouts, missing table) are retried forever with capped, jittered exponential backoff — the
offsets stay uncommitted, nothing is lost; data errors (constraint violated, type mismatch, a
value the Native encoder cannot write) are never retried as is: the block is bisected, the good
halves land under sub-tokens, and the single rows still refused are returned to be dead-lettered.

Low-cardinality columns are sent as plain ``String`` (``column_type_names``) and converted by the
server: building LowCardinality dictionaries in Python cost ~40 % of the insert (measured), and
naming the types also spares a DESCRIBE per insert.
"""

from __future__ import annotations

import hashlib
import logging
import random
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from classtrace.access import ACCESS_LOG_TYPES
from classtrace.clickhouse import engine_dir, local_schema_settings, store_errors
from classtrace.errors import StoreError
from classtrace.schema import ALERT_COLUMNS, DEVICE_STATUS_COLUMNS, EVENT_COLUMNS
from sinks.base import InsertClient
from sinks.errors import SinkStopped
from sinks.metrics import SinkMetrics
from sinks.protobuf_events import INGEST_TABLE, RawEvents, ingest_settings
from sinks.rows import Block, refusal_code

__all__ = ["INSERT_SETTINGS", "TABLE_TYPES", "ClickHouseWriter", "classify", "dedup_token"]

logger = logging.getLogger(__name__)

INSERT_SETTINGS: dict[str, Any] = {"optimize_on_insert": 0}
"""Settings of every sink insert (the caller's own settings win).

``optimize_on_insert`` (on by default) makes a ReplacingMergeTree collapse each inserted block
as a merge would, before writing it. The sink's blocks hold no duplicates worth collapsing (a
re-delivered record comes in another block, under another token), yet on ``events`` that pass
cost ~4.6 of ~7 µs per event of chDB's insert CPU (measured: 1M load-test events in 100k-row
inserts, 7.2 → 2.6 µs). Off, duplicates collapse where they always had to: in background merges
and under ``FINAL``, which every exact count already uses (docs/DESIGN.md §6).
"""

_TS = "DateTime64(3, 'UTC')"


def _wire(column_type: str) -> str:
    """The type a column is sent as: LowCardinality as its inner type (the server converts)."""
    return (
        column_type.removeprefix("LowCardinality(").removesuffix(")")
        if column_type.startswith("Low")
        else column_type
    )


TABLE_TYPES: dict[str, dict[str, str]] = {
    "events": dict(EVENT_COLUMNS),
    "lesson_summary": {
        "lesson_id": "String", "school_id": "String", "classroom_id": "String", "teacher_id": "String",
        "subject": "String", "grade": "String", "started_at": _TS, "ended_at": f"Nullable({_TS})",
        "st_samples": "UInt32", "st_rt": "Float64", "st_ch": "Float64", "st_codes": "String",
        "teaching_mode": "String", "attention_rate": "Nullable(Float64)",
        "participation_rate": "Nullable(Float64)", "answers": "UInt32",
        "answer_accuracy": "Nullable(Float64)", "hand_raises": "UInt32", "enrolled": "UInt32",
        "computed_at": _TS, "final": "Bool", "version": "UInt64",
    },
    "metric_points": {
        "window_start": _TS, "window_end": _TS, "school_id": "String", "classroom_id": "String",
        "lesson_id": "String", "metric": "String", "value": "Float64",
    },
    "dead_letters": {
        "received_at": _TS, "source": "String", "error": "String", "raw": "String",
        "event_id": "String", "topic": "String", "partition": "Int32", "offset": "Int64",
        "school_id": "String", "field": "String", "raw_sha256": "String", "raw_length": "UInt64",
        "raw_kept": "String",
    },
    "access_log": ACCESS_LOG_TYPES,
    "device_status": {name: _wire(t) for name, t in DEVICE_STATUS_COLUMNS},
    "alerts": {name: _wire(t) for name, t in ALERT_COLUMNS},
}  # fmt: skip
"""Wire types of the insert columns (LowCardinality sent as String; the server converts)."""

# ClickHouse codes meaning "these rows are wrong", not "try again later".
_DATA_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    53,   # TYPE_MISMATCH
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    376,  # CANNOT_PARSE_UUID
    407,  # DECIMAL_OVERFLOW
    469,  # VIOLATED_CONSTRAINT
})  # fmt: skip
# What the Python Native encoder raises for a value its column type cannot hold.
_ENCODER_ERRORS: tuple[type[BaseException], ...] = (
    TypeError, ValueError, OverflowError, struct.error, UnicodeError, AttributeError,
)  # fmt: skip

# Codes meaning "this server cannot take events as protobuf": the block is written as rows instead
# (any server can take those), never retried as protobuf.
_UNKNOWN_SETTING = 115  # format_schema_source needs ClickHouse >= 25.6
_PROTOBUF_PATH_CODES = frozenset({
    _UNKNOWN_SETTING,
    434,  # CANNOT_PARSE_PROTOBUF_SCHEMA
    436,  # PROTOBUF_BAD_CAST
    443,  # NO_COLUMNS_SERIALIZED_TO_PROTOBUF_FIELDS
    444,  # UNKNOWN_PROTOBUF_FORMAT
})  # fmt: skip

Failure = Literal["transient", "data"]


def classify(exc: BaseException) -> Failure:
    """``data`` when retrying the same rows cannot succeed, else ``transient``.

    Unknown ClickHouse codes count as transient on purpose: wrongly retrying costs time and
    shows up as lag and a retry metric, wrongly dead-lettering loses a batch of good data.
    """
    if isinstance(exc, StoreError):
        code = exc.code
        if code in _DATA_CODES:
            return "data"
        if code == 252 and "partitions for single INSERT block" in str(exc):
            return "data"  # TOO_MANY_PARTS for one block: halves span fewer months
        return "transient"
    if isinstance(exc, _ENCODER_ERRORS):
        return "data"
    return "transient"


def dedup_token(table: str, ranges: Iterable[tuple[str, int, int, int]]) -> str:
    """Deduplication token of ``table``'s block read from ``(topic, partition, first, last)``.

    The same offset ranges are the same records, hence the same rows: a re-insert is a no-op.
    """
    text = "|".join(f"{t}/{p}:{a}-{b}" for t, p, a, b in sorted(ranges))
    return f"{table}:{hashlib.sha256(text.encode()).hexdigest()[:40]}"


class ClickHouseWriter:
    """Writes blocks to one database; see the module docstring for the failure policy.

    ``stopping`` aborts the retries of an unavailable ClickHouse once ``stop_grace`` seconds have
    passed since it was set (the batch then stays uncommitted).
    """

    def __init__(
        self,
        client: InsertClient,
        database: str,
        metrics: SinkMetrics,
        *,
        stopping: threading.Event | None = None,
        stop_grace: float = 10.0,
        backoff_base: float = 0.1,
        backoff_cap: float = 10.0,
        settings: Mapping[str, Any] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.client = client
        self.database = database
        self.metrics = metrics
        self.stopping = stopping or threading.Event()
        self.stop_grace = stop_grace
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.settings = {**INSERT_SETTINGS, **(settings or {})}
        self._sleep = sleep
        self._rng = random.Random()
        self._stop_seen: float | None = None
        self._no_protobuf: str | None = None  # why this server takes events only as rows
        self._protobuf_settings: dict[str, Any] | None = None

    # --- public ---------------------------------------------------------------------------------

    def write(
        self, block: Block, token: str, settings: Mapping[str, Any] | None = None
    ) -> list[tuple[int, str]]:
        """Insert ``block`` once (idempotent under ``token``); return the refused rows.

        Refused rows come back as ``(index in block, ClickHouse's reason)``. Raises
        :class:`SinkStopped` when stopped while ClickHouse stays unavailable.
        """
        if not len(block):
            return []
        extra = dict(settings or {})
        return self._write_range(block, 0, len(block), token, extra)

    def write_events(self, events: RawEvents, token: str) -> str | None:
        """Insert EventBatch bytes through ``events_ingest`` (migration 0006).

        Retries outages like :meth:`write`; returns None once landed, or ClickHouse's reason
        when it refuses the block — the caller then writes the same events as rows, whose
        bisection isolates what was refused.
        """
        if not len(events):
            return None
        if self._no_protobuf is not None:
            self.metrics.row_fallbacks.inc()
            return self._no_protobuf
        settings = {**self.settings, **self._schema_settings(), "insert_deduplication_token": token}
        table = f"{self.database}.{INGEST_TABLE}"
        body = events.body()  # once, not per retry

        def insert() -> None:
            started = time.perf_counter()
            try:
                with store_errors(f"insert into {table}"):
                    self.client.raw_insert(table, None, body, settings=settings, fmt="ProtobufList")
            except StoreError as exc:
                if exc.code == _UNKNOWN_SETTING:  # an older server: it will not learn mid-run
                    self._no_protobuf = f"protobuf path off for this server: {_reason(exc)}"
                if exc.code in _PROTOBUF_PATH_CODES:
                    raise _Refused(_reason(exc)) from exc
                raise
            self.metrics.insert_seconds.labels("events").observe(time.perf_counter() - started)
            self.metrics.rows_inserted.labels("events").inc(len(events))

        try:
            self._retrying("events", len(events), insert)
        except _Refused as refused:
            logger.warning("protobuf insert refused, writing the block as rows: %s", refused.reason)
            self.metrics.row_fallbacks.inc()
            return refused.reason
        return None

    # --- internals ------------------------------------------------------------------------------

    def _schema_settings(self) -> dict[str, Any]:
        """The schema settings of a protobuf insert: inline for a server, a file for chDB."""
        if self._protobuf_settings is None:
            directory = engine_dir(self.client)
            inline = ingest_settings()
            self._protobuf_settings = local_schema_settings(inline, directory) if directory else inline
        return self._protobuf_settings

    def _write_range(
        self, block: Block, start: int, stop: int, token: str, extra: dict[str, Any]
    ) -> list[tuple[int, str]]:
        part = block if (start, stop) == (0, len(block)) else block.take(start, stop)
        part_token = token if part is block else f"{token}/{start}-{stop}"
        try:
            self._insert_retrying(part, part_token, extra)
        except _Refused as refused:
            if stop - start == 1:
                logger.warning(  # the error's name: ClickHouse's text may quote the row's values
                    "row refused by ClickHouse table=%s source=%s error=%s",
                    block.table,
                    block.sources[start],
                    refusal_code(refused.reason),
                )
                return [(start, refused.reason)]
            mid = (start + stop) // 2
            logger.info("bisecting refused block table=%s rows=%d-%d", block.table, start, stop)
            return self._write_range(block, start, mid, token, extra) + self._write_range(
                block, mid, stop, token, extra
            )
        return []

    def _insert_retrying(self, block: Block, token: str, extra: dict[str, Any]) -> None:
        self._retrying(block.table, len(block), lambda: self._insert_once(block, token, extra))

    def _retrying(self, table: str, rows: int, insert: Callable[[], None]) -> None:
        """Run ``insert`` until it lands; a data error raises _Refused, anything else is retried."""
        attempt = 0
        while True:
            try:
                insert()
                return
            except _Refused:
                raise
            except Exception as exc:
                if classify(exc) == "data":
                    raise _Refused(_reason(exc)) from exc
                attempt += 1
                self.metrics.retries.labels(table).inc()
                self._check_stop(table, rows, exc)
                delay = self._rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** min(attempt, 20)))
                logger.warning(
                    "insert failed, retrying table=%s rows=%d attempt=%d delay=%.2fs error=%s",
                    table,
                    rows,
                    attempt,
                    delay,
                    _reason(exc),
                )
                self._wait(delay)

    def _insert_once(self, block: Block, token: str, extra: dict[str, Any]) -> None:
        types = TABLE_TYPES[block.table]
        names = block.column_names
        settings = {**self.settings, **extra, "insert_deduplication_token": token}
        started = time.perf_counter()
        with store_errors(f"insert into {self.database}.{block.table}"):
            self.client.insert(
                block.table,
                block.data(),
                column_names=list(names),
                database=self.database,
                column_type_names=[types[n].replace("LowCardinality(String)", "String") for n in names],
                column_oriented=True,
                settings=settings,
            )
        self.metrics.insert_seconds.labels(block.table).observe(time.perf_counter() - started)
        self.metrics.rows_inserted.labels(block.table).inc(len(block))

    def _check_stop(self, table: str, rows: int, exc: BaseException) -> None:
        if not self.stopping.is_set():
            return
        now = time.monotonic()
        if self._stop_seen is None:
            self._stop_seen = now
        if now - self._stop_seen >= self.stop_grace:
            raise SinkStopped(
                f"stopped while ClickHouse was unavailable; {rows} {table} rows left "
                f"uncommitted for redelivery: {_reason(exc)}"
            ) from exc

    def _wait(self, delay: float) -> None:
        if self._sleep is not None:
            self._sleep(delay)
        elif self.stopping.is_set():
            time.sleep(min(delay, 0.5))  # draining: retry faster until stop_grace runs out
        else:
            self.stopping.wait(delay)


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, StoreError):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= 2000 else text[:1997] + "..."
