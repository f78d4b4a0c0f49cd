"""The worker's logic without Faust: records in, table values and MetricBatch records out.

Faust's cost is per record and per table write (FIELD-NOTES), so the processor works on a
*batch of records* at a time and writes each touched value once per batch, not once per event
or record. Everything in :meth:`Processor.process_records` is synchronous: between the first
event applied and the last table write no other coroutine runs, so the in-memory state never
holds changes that are not on their way to the changelog when a rebalance or timer fires.
Records are acknowledged by the caller only after this returns, hence at-least-once: after a
crash the uncommitted records come again, and each value's own SeenEvents skips what it holds.

Poison input is data (STYLE §7): an undecodable record, an invalid event, or an exception while
applying a record becomes a ``DeadLetter`` and processing goes on — an exception escaping into
Faust would hang the worker (FIELD-NOTES).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from classtrace.codec import decode_batch, set_ts_now
from classtrace.errors import DecodeError, ValidationError
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from classtrace.validation import check_event
from stream_processors.lesson_state import LessonState, summary_fingerprint
from stream_processors.metrics.windows import WINDOW_MS, window_start
from stream_processors.window_state import DeviceBook, WindowState

__all__ = ["Outputs", "Processor", "ProcessorConfig", "Record", "StateTable", "Stats"]

logger = logging.getLogger(__name__)


class StateTable(Protocol):
    """A changelogged key → bytes table (a Faust table in the worker, a dict in unit tests)."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        """Store ``value`` (None deletes) and log it to changelog ``partition``."""

    def iter_keys(self) -> Iterator[str]:
        """A snapshot of the keys (safe to iterate while the table changes)."""


class Outputs(Protocol):
    """Where results go: classtrace.metrics.v1 and classtrace.deadletter.v1."""

    def metrics(self, key: bytes, value: bytes) -> None: ...

    def dead_letter(self, key: bytes | None, value: bytes) -> None: ...


@dataclass(frozen=True)
class Record:
    """One record of classtrace.events.v1 as the consumer saw it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class ProcessorConfig:
    """Tunables of the processor; the defaults are the product's."""

    summary_interval_s: float = 1.0
    """Live lesson summaries are emitted at most this often per lesson (finals at once)."""
    window_retention_s: float = 1800.0
    """Windows are kept (and a late event re-emits its window) this long after they end."""
    idle_lesson_s: float = 600.0
    """A finished lesson leaves memory after this long without events (its table value stays)."""


@dataclass
class Stats:
    """Counters for logs and benchmarks."""

    records: int = 0
    events: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    late_dropped: int = 0
    summaries: int = 0
    errors: int = 0
    first_record_at: float = 0.0
    """Wall time the first record reached the worker (set by the agent): for throughput figures."""
    last_batch_at: float = 0.0
    """Wall time the latest batch was done."""


class Processor:
    """Per-lesson, per-window and per-device state of the partitions this worker owns."""

    def __init__(
        self,
        lessons: StateTable,
        windows: StateTable,
        devices: StateTable,
        outputs: Outputs,
        config: ProcessorConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tables = (lessons, windows, devices)
        self._out = outputs
        self.config = config or ProcessorConfig()
        self._clock = clock
        self.stats = Stats()
        self._lessons: dict[str, LessonState] = {}
        self._windows: dict[str, WindowState] = {}
        self._books: dict[str, DeviceBook] = {}
        self._partition: dict[str, int] = {}  # classroom → partition of its records
        self._dirty_lessons: set[str] = set()
        self._dirty_windows: set[str] = set()
        self._changed_devices: dict[str, set[str]] = {}
        self._pending: set[str] = set()  # lessons whose changed summary waits for the throttle
        self._emitted: dict[str, tuple[bytes, bool, float, int]] = {}  # fingerprint, final, when, version
        self._touched: dict[str, float] = {}  # lesson → wall time of its last event
        self._next_sweep = 0.0

    # --- records in -----------------------------------------------------------------------------

    def process_records(self, records: Iterable[Record]) -> None:
        """Apply a batch of records, then write every touched value once and emit the results."""
        now = self._clock()
        for record in records:
            self.stats.records += 1
            try:
                self._process_record(record, now)
            except Exception as exc:  # a bug must not stop the stream: dead-letter and go on
                self.stats.errors += 1
                logger.exception(
                    "record failed topic=%s partition=%d offset=%d",
                    record.topic, record.partition, record.offset,
                )  # fmt: skip
                self._dead_letter(record, f"worker error: {exc!r}", record.value or b"", now)
        try:
            self._flush(now)
        except Exception:
            self.stats.errors += 1
            logger.exception("flush failed")
        self.stats.last_batch_at = self._clock()
        if not self.stats.first_record_at:
            self.stats.first_record_at = now

    def _process_record(self, record: Record, now: float) -> None:
        try:
            batch = decode_batch(
                record.value or b"", topic=record.topic, partition=record.partition, offset=record.offset
            )
        except DecodeError as exc:
            self._dead_letter(record, str(exc), record.value or b"", now)
            return
        if not record.key:
            self._dead_letter(record, "record has no key: events records are keyed by classroom_id",
                              record.value or b"", now)  # fmt: skip
            return
        classroom = record.key.decode("utf-8", "replace")
        self._partition[classroom] = record.partition
        for event in batch.events:
            error = check_event(event, now)
            if error is None and event.classroom_id != classroom:
                error = ValidationError(
                    "classroom_id", f"{event.classroom_id!r} differs from the record key {classroom!r}"
                )
            if error is not None:
                self._dead_letter(record, str(error), event.SerializeToString(), now, event)
                continue
            self.stats.events += 1
            self._apply(classroom, event, now)

    def _apply(self, classroom: str, event: pb.Event, now: float) -> None:
        occurred_ms = event.occurred_at.seconds * 1000 + event.occurred_at.nanos // 1_000_000
        payload = event.WhichOneof("payload")
        window = self._window(classroom, window_start(occurred_ms), now)
        fresh = False
        if window is not None:
            if window.apply(event, payload):
                self._dirty_windows.add(f"{classroom}/{window.start_ms}")
                fresh = True
        else:
            self.stats.late_dropped += 1
        if event.lesson_id:
            key = f"{classroom}/{event.lesson_id}"
            lesson = self._lesson(key, classroom, event.lesson_id)
            if lesson.apply(event, payload, occurred_ms):
                self._dirty_lessons.add(key)
                self._touched[key] = now
                fresh = True
        if payload == "heartbeat":
            book = self._book(classroom)
            if book.apply(event):
                self._changed_devices.setdefault(classroom, set()).add(event.device_id)
                fresh = True
        if not fresh:
            self.stats.duplicates += 1

    # --- state lookup ---------------------------------------------------------------------------

    def _lesson(self, key: str, classroom: str, lesson_id: str) -> LessonState:
        state = self._lessons.get(key)
        if state is None:
            raw = self._tables[0].get(key)
            state = LessonState.from_bytes(raw) if raw else LessonState(classroom, lesson_id)
            self._lessons[key] = state
        return state

    def _window(self, classroom: str, start_ms: int, now: float) -> WindowState | None:
        key = f"{classroom}/{start_ms}"
        state = self._windows.get(key)
        if state is None:
            raw = self._tables[1].get(key)
            if raw:
                state = WindowState.from_bytes(raw)
            elif (start_ms + WINDOW_MS) / 1000 < now - self.config.window_retention_s:
                return None  # evicted: a fresh partial point would replace the complete one
            else:
                state = WindowState(classroom, start_ms)
            self._windows[key] = state
        return state

    def _book(self, classroom: str) -> DeviceBook:
        book = self._books.get(classroom)
        if book is None:
            raw = self._tables[2].get(classroom)
            book = DeviceBook.from_bytes(raw) if raw else DeviceBook(classroom)
            self._books[classroom] = book
        return book

    # --- results out ----------------------------------------------------------------------------

    def _flush(self, now: float) -> None:
        lessons, windows, devices = self._tables
        batches: dict[str, ppb.MetricBatch] = {}

        def batch_of(classroom: str) -> ppb.MetricBatch:
            found = batches.get(classroom)
            if found is None:
                found = batches[classroom] = ppb.MetricBatch()
            return found

        for key in self._dirty_windows:
            window = self._windows[key]
            windows.put(self._partition[window.classroom_id], key, window.to_bytes())
            batch_of(window.classroom_id).points.extend(window.points())
        for key in self._dirty_lessons:
            lesson = self._lessons[key]
            lessons.put(self._partition[lesson.classroom_id], key, lesson.to_bytes())
            self._maybe_emit(key, lesson, now, batch_of, throttle=True)
        now_ms = int(now * 1000)
        for classroom, changed in self._changed_devices.items():
            book = self._books[classroom]
            devices.put(self._partition[classroom], classroom, book.to_bytes())
            batch_of(classroom).devices.extend(book.status(d, now_ms) for d in sorted(changed))
        self._dirty_windows.clear()
        self._dirty_lessons.clear()
        self._changed_devices.clear()
        self._send(batches)
        if now >= self._next_sweep:
            self._next_sweep = now + 10.0
            self._sweep(now)

    def _maybe_emit(
        self,
        key: str,
        lesson: LessonState,
        now: float,
        batch_of: Callable[[str], ppb.MetricBatch],
        throttle: bool,
    ) -> None:
        summary = lesson.summary()
        if summary is None:
            return
        fingerprint = summary_fingerprint(summary)
        last = self._emitted.get(key)
        if last is not None and last[0] == fingerprint:
            self._pending.discard(key)
            return
        becomes_final = summary.final and (last is None or not last[1])
        too_soon = last is not None and now - last[2] < self.config.summary_interval_s
        if throttle and not becomes_final and too_soon:
            self._pending.add(key)
            return
        # version: wall-clock µs, strictly increasing per lesson, so it also increases across
        # restarts (ClickHouse keeps the row with the highest version).
        version = max(int(now * 1_000_000), (last[3] + 1) if last else 0)
        summary.version = version
        set_ts_now(summary.computed_at, int(now * 1e9))
        batch_of(lesson.classroom_id).summaries.append(summary)
        self._emitted[key] = (fingerprint, summary.final, now, version)
        self._pending.discard(key)
        self.stats.summaries += 1

    def _send(self, batches: dict[str, ppb.MetricBatch]) -> None:
        for classroom, batch in batches.items():
            self._out.metrics(classroom.encode(), batch.SerializeToString())

    def _dead_letter(
        self, record: Record, error: str, raw: bytes, now: float, event: pb.Event | None = None
    ) -> None:
        self.stats.dead_letters += 1
        letter = ppb.DeadLetter(
            source="worker",
            error=error,
            raw=raw,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        set_ts_now(letter.received_at, int(now * 1e9))
        if event is not None:
            letter.event_id = event.event_id
            letter.school_id = event.school_id
        logger.debug("dead letter topic=%s offset=%d error=%s", record.topic, record.offset, error)
        self._out.dead_letter(record.key, letter.SerializeToString())

    # --- timer ----------------------------------------------------------------------------------

    def tick(self) -> None:
        """Run periodically: throttled summaries that are due, and device_offline checks."""
        now = self._clock()
        batches: dict[str, ppb.MetricBatch] = {}

        def batch_of(classroom: str) -> ppb.MetricBatch:
            return batches.setdefault(classroom, ppb.MetricBatch())

        try:
            for key in list(self._pending):
                lesson = self._lessons.get(key)
                if lesson is None:
                    self._pending.discard(key)
                    continue
                last = self._emitted.get(key)
                if last is None or now - last[2] >= self.config.summary_interval_s:
                    self._maybe_emit(key, lesson, now, batch_of, throttle=False)
            self._load_books()
            now_ms = int(now * 1000)
            for classroom, book in self._books.items():
                for device in book.newly_offline(now_ms):
                    logger.info("device offline classroom=%s device=%s", classroom, device)
                    batch_of(classroom).devices.append(book.status(device, now_ms))
            self._send(batches)
        except Exception:
            self.stats.errors += 1
            logger.exception("tick failed")

    def _load_books(self) -> None:
        """Device books restored from the changelog are watched even before their next heartbeat."""
        devices = self._tables[2]
        for classroom in devices.iter_keys():
            if classroom not in self._books:
                raw = devices.get(classroom)
                if raw:
                    self._books[classroom] = DeviceBook.from_bytes(raw)

    def _sweep(self, now: float) -> None:
        """Drop expired windows (memory and table) and idle finished lessons (memory only)."""
        horizon_ms = (now - self.config.window_retention_s) * 1000
        for key in [k for k, w in self._windows.items() if w.start_ms + WINDOW_MS < horizon_ms]:
            window = self._windows.pop(key)
            self._tables[1].put(self._partition[window.classroom_id], key, None)
        for key in [k for k, t in self._touched.items() if now - t > self.config.idle_lesson_s]:
            lesson = self._lessons.get(key)
            if lesson is not None and lesson.final and key not in self._pending:
                del self._lessons[key]
                del self._touched[key]

    def forget(self) -> None:
        """Drop every cached object (partitions were revoked: their values may change elsewhere)."""
        self._lessons.clear()
        self._windows.clear()
        self._books.clear()
        self._pending.clear()
        self._touched.clear()
