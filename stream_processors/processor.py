"""The worker's logic without Faust: records in, table values and MetricBatch records out.

Faust's cost is per record and per table write (FIELD-NOTES), so the processor works on a
*batch of records* at a time and writes each touched value once per batch, not once per event
or record. Everything in :meth:`Processor.process_records` is synchronous: between the first
event applied and the last table write no other coroutine runs, so the in-memory state never
holds changes that are not on their way to the changelog when a rebalance or timer fires.
Records are acknowledged by the caller only after this returns, hence at-least-once: after a
crash the uncommitted records come again, and each value's own SeenEvents skips what it holds.

Nearly every record is read, validated and counted by the C loop (``stream_processors._fold``,
:meth:`Processor._fold_record`) on this processor's own state objects. A record it does not
accept, or every record when it is not built or ``ProcessorConfig.native`` is False, goes
through :meth:`Processor._apply_events`, the same loop in Python and the C loop's reference
(tests/unit/test_fold.py): it takes rows of values already read and validated — by the C
scanner (``classtrace.wire.scan_events``), else by ``classtrace.validation.read_event`` over
the decoded record, which also gives the reasons of the events dead-lettered. Both find an
event's window and lesson by comparing with the previous event's, since a record is one
classroom's events, mostly in time order.

Poison input is data (STYLE §7): an undecodable record, an invalid event, or an exception while
applying a record becomes a ``DeadLetter`` and processing goes on — an exception escaping into
Faust would hang the worker (FIELD-NOTES).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from classtrace.codec import decode_batch, set_ts_now
from classtrace.errors import DecodeError, ValidationError
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from classtrace.validation import read_event
from classtrace.wire import EventRow, scan_events
from stream_processors.lesson_state import LessonState
from stream_processors.metrics.windows import WINDOW_MS
from stream_processors.summaries import SummaryThrottle, summary_sink
from stream_processors.window_state import DeviceBook, WindowState

__all__ = ["Outputs", "Processor", "ProcessorConfig", "Record", "StateTable", "Stats"]

logger = logging.getLogger(__name__)

try:
    from stream_processors._fold import fold_events, window_outputs
except ImportError:  # pragma: no cover - the build always compiles it (setup.py)
    fold_events = window_outputs = None  # type: ignore[assignment]
    logger.warning(
        "stream_processors._fold is not built: the worker counts events in Python (several times "
        "slower); reinstall with a C compiler and the Python headers (pip install -e .)"
    )

_MAX_EVENT_AGE_S = 7 * 24 * 3600  # validation's horizon (DESIGN §4)


def _event(value: bytes | pb.Event) -> pb.Event:
    """A lesson or heartbeat row's event: bytes from the C scanner (rare: decoded here)."""
    return pb.Event.FromString(value) if value.__class__ is bytes else value  # type: ignore[arg-type,return-value]


def _ms(ts: Any) -> int:
    return int(ts.seconds) * 1000 + int(ts.nanos) // 1_000_000


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
    native: bool = True
    """Count events with the C loop (stream_processors._fold) when it is built; False: the
    Python loop, its reference (tests hold the two to the same results)."""


@dataclass
class Stats:
    """Counters for logs and benchmarks."""

    records: int = 0
    batches: int = 0
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
        self._fold = fold_events if self.config.native else None
        self._window_outputs = window_outputs if self.config.native else None
        self.stats = Stats()
        self._lessons: dict[str, LessonState] = {}
        self._windows: dict[str, WindowState] = {}
        self._books: dict[str, DeviceBook] = {}
        self._partition: dict[str, int] = {}  # classroom → partition of its records
        # classroom → latest occurred_at (ms) seen: window lateness is measured in event time, so
        # a backfill or a simulator running in the past keeps its windows (wall clock would not).
        self._watermark: dict[str, int] = {}
        self._dirty_lessons: set[str] = set()
        self._dirty_windows: set[str] = set()
        self._changed_devices: dict[str, set[str]] = {}
        self._summaries = SummaryThrottle(self.config.summary_interval_s)
        self._touched: dict[str, float] = {}  # lesson → wall time of its last event
        self._next_sweep = 0.0

    # --- records in -----------------------------------------------------------------------------

    def process_records(self, records: Iterable[Record]) -> None:
        """Apply a batch of records, then write every touched value once and emit the results."""
        now = self._clock()
        stats = self.stats
        stats.batches += 1
        for record in records:
            stats.records += 1
            try:
                self._process_record(record, now)
            except Exception as exc:  # a bug must not stop the stream: dead-letter and go on
                stats.errors += 1
                logger.exception(
                    "record failed topic=%s partition=%d offset=%d",
                    record.topic, record.partition, record.offset,
                )  # fmt: skip
                self._dead_letter(record, f"worker error: {exc!r}", record.value or b"", now)
        try:
            self._flush(now)
        except Exception:
            stats.errors += 1
            logger.exception("flush failed")
        stats.last_batch_at = self._clock()
        if not stats.first_record_at:
            stats.first_record_at = now

    def _process_record(self, record: Record, now: float) -> None:
        value = record.value or b""
        classroom = record.key.decode("utf-8", "replace") if record.key else None
        rows: list[EventRow] | None = None
        if classroom is not None:
            self._partition[classroom] = record.partition
            # Nearly every record: all events valid and the key's, read and counted in C. When
            # the C loop refuses a record, so would the scanner: straight to the decode path.
            if self._fold is not None:
                if self._fold_record(classroom, value, now):
                    return
            else:
                rows = scan_events(value, now, classroom)
        batch: pb.EventBatch | None = None
        if rows is None:
            try:
                batch = decode_batch(
                    value, topic=record.topic, partition=record.partition, offset=record.offset
                )
            except DecodeError as exc:
                self._dead_letter(record, str(exc), value, now)
                return
        if classroom is None:
            self._dead_letter(record, "record has no key: events records are keyed by classroom_id",
                              value, now)  # fmt: skip
            return
        if batch is not None:
            self._apply_events(classroom, self._read_events(record, classroom, batch.events, now))
        elif rows is not None:
            self._apply_events(classroom, rows)

    def _fold_record(self, classroom: str, value: bytes, now: float) -> bool:
        """The C loop over a record (stream_processors._fold); False: not accepted there."""
        done = self._fold(  # type: ignore[misc]  # not None: checked by the caller
            value, now, classroom, self._watermark.get(classroom, 0),
            lambda start, mark: self._window_pair(classroom, start, mark),
            lambda lesson_id: self._lesson_pair(classroom, lesson_id),
            lambda: self._book_parts(classroom),
            self._dirty_windows, self._dirty_lessons,
        )  # fmt: skip
        if done is None:
            return False
        counted, duplicates, late, mark = done
        stats = self.stats
        stats.events += counted
        stats.duplicates += duplicates
        stats.late_dropped += late
        self._watermark[classroom] = mark
        return True

    def _window_pair(self, classroom: str, start_ms: int, mark_ms: int) -> tuple[str, WindowState] | None:
        window = self._window(classroom, start_ms, mark_ms)
        return None if window is None else (f"{classroom}/{start_ms}", window)

    def _lesson_pair(self, classroom: str, lesson_id: str) -> tuple[str, LessonState]:
        key = f"{classroom}/{lesson_id}"
        return key, self._lesson(key, classroom, lesson_id)

    def _book_parts(self, classroom: str) -> tuple[dict[str, list[Any]], set[str], set[str]]:
        """What the C loop updates for a heartbeat: the book's devices and offline set, and the
        set of devices whose status is emitted at the flush (an empty one emits nothing)."""
        book = self._book(classroom)
        return book.devices, book.offline, self._changed_devices.setdefault(classroom, set())

    def _take_heartbeat(
        self,
        classroom: str,
        device_id: str,
        occurred: int,
        event_id: str,
        school_id: str,
        seen_ms: int,
        interval_s: int,
        battery_pct: float,
        spool_depth: int,
        device_kind: int,
    ) -> bool:
        book = self._book(classroom)
        if not book.take(device_id, occurred, event_id, school_id, seen_ms, interval_s, battery_pct,
                         spool_depth, device_kind):  # fmt: skip
            return False
        self._changed_devices.setdefault(classroom, set()).add(device_id)
        return True

    def _read_events(
        self, record: Record, classroom: str, events: Iterable[pb.Event], now: float
    ) -> Iterator[EventRow]:
        """The rows of the events that pass; the others are dead-lettered with their reasons."""
        for event in events:
            try:
                (payload, event_id, school_id, room, device_id, lesson_id, seconds, nanos,
                 p0, p1, p2, p3) = read_event(event, now)  # fmt: skip
            except ValidationError as exc:
                self._dead_letter(record, str(exc), event.SerializeToString(), now, event)
                continue
            if room != classroom:
                error = ValidationError("classroom_id", f"{room!r} differs from the record key {classroom!r}")
                self._dead_letter(record, str(error), event.SerializeToString(), now, event)
                continue
            if payload == "trace":
                p0 = p0.correct
            elif payload in ("lesson", "heartbeat"):
                p0, p1 = event, None
            yield (payload, event_id, school_id, room, device_id, lesson_id, seconds, nanos, event.seq,
                   p0, p1, p2, p3)  # fmt: skip

    def _apply_events(self, classroom: str, rows: Iterable[EventRow]) -> None:
        """Count one record's valid events: the worker's hot loop.

        Rows come from the C scanner (``classtrace.wire.scan_events``) or, for a record it does
        not accept, from :meth:`_read_events`, in the same shape. The window, lesson and device
        book are looked up when they change from one event to the next, not per event: a record
        holds one classroom's events, mostly in time order. Every event goes through each
        aggregate's own dedup.
        """
        stats = self.stats
        dirty_windows, dirty_lessons = self._dirty_windows, self._dirty_lessons
        window: WindowState | None = None
        window_start = window_key = None
        lesson: LessonState | None = None
        lesson_id_now = lesson_key = ""
        counted = duplicates = 0
        mark = self._watermark.get(classroom, 0)
        for (payload, event_id, school_id, _room, device_id, lesson_id, seconds, nanos, seq,
             p0, p1, p2, p3) in rows:  # fmt: skip
            counted += 1
            occurred = seconds * 1000 + nanos // 1_000_000
            if occurred > mark:  # noqa: PLR1730 - cheaper than max() in the hot loop
                mark = occurred
            start = occurred - occurred % WINDOW_MS
            if start != window_start:
                window_start, window_key = start, f"{classroom}/{start}"
                window = self._window(classroom, start, mark)
            fresh = False
            if window is None:
                stats.late_dropped += 1
            elif window.count(device_id, seq, event_id, school_id, lesson_id):
                dirty_windows.add(window_key)  # type: ignore[arg-type]  # set with window_start
                fresh = True
                if payload == "observation":
                    window.observe(p0, p1, p2)
            if lesson_id:
                if lesson_id != lesson_id_now or lesson is None:
                    lesson_id_now, lesson_key = lesson_id, f"{classroom}/{lesson_id}"
                    lesson = self._lesson(lesson_key, classroom, lesson_id)
                if lesson.count(device_id, seq, event_id, school_id, occurred):
                    dirty_lessons.add(lesson_key)
                    fresh = True
                    if payload == "trace":
                        lesson.add_trace(p0, p1, p2, p3, seconds * 1_000_000_000 + nanos, event_id)
                    elif payload == "observation":
                        lesson.attention.add(p1, p0)
                    elif payload == "teaching":
                        lesson.add_teaching(p0, occurred, p1)
                    elif payload == "lesson":
                        life = _event(p0).lesson
                        lesson.add_lifecycle(life.phase, occurred, event_id, life.teacher_id, life.subject,
                                             life.grade, life.enrolled)  # fmt: skip
            if payload == "heartbeat":
                event = _event(p0)
                hb = event.heartbeat
                seen = _ms(event.received_at) if event.HasField("received_at") else occurred
                fresh |= self._take_heartbeat(
                    classroom, device_id, occurred, event_id, school_id, seen,
                    hb.interval_s, hb.battery_pct, hb.spool_depth, event.device_kind,
                )  # fmt: skip
            if not fresh:
                duplicates += 1
        self._watermark[classroom] = mark
        stats.events += counted
        stats.duplicates += duplicates

    # --- state lookup ---------------------------------------------------------------------------

    def _lesson(self, key: str, classroom: str, lesson_id: str) -> LessonState:
        state = self._lessons.get(key)
        if state is None:
            raw = self._tables[0].get(key)
            state = LessonState.from_bytes(raw) if raw else LessonState(classroom, lesson_id)
            self._lessons[key] = state
        return state

    def _window(self, classroom: str, start_ms: int, mark_ms: int) -> WindowState | None:
        key = f"{classroom}/{start_ms}"
        state = self._windows.get(key)
        if state is None:
            raw = self._tables[1].get(key)
            if raw:
                state = WindowState.from_bytes(raw)
            elif start_ms + WINDOW_MS < mark_ms - self.config.window_retention_s * 1000:
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

        points: dict[str, list[bytes]] = {}  # classroom → MetricBatch points as wire bytes
        outputs = self._window_outputs
        for key in self._dirty_windows:
            window = self._windows[key]
            room = window.classroom_id
            written = outputs(window) if outputs is not None else None  # the same, in C
            if written is not None:
                windows.put(self._partition[room], key, written[0])
                points.setdefault(room, []).append(written[1])
            else:
                windows.put(self._partition[room], key, window.to_bytes())
                window.add_points(batch_of(room))
        for key in self._dirty_lessons:
            lesson = self._lessons[key]
            lessons.put(self._partition[lesson.classroom_id], key, lesson.to_bytes())
            self._touched[key] = now
            if self._summaries.changed(key, lesson, now, summary_sink(batch_of, lesson.classroom_id)):
                self.stats.summaries += 1
        now_ms = int(now * 1000)
        for classroom, changed in self._changed_devices.items():
            if not changed:  # the C loop asked for the book, but took no heartbeat
                continue
            book = self._books[classroom]
            devices.put(self._partition[classroom], classroom, book.to_bytes())
            batch_of(classroom).devices.extend(book.status(d, now_ms) for d in sorted(changed))
        self._dirty_windows.clear()
        self._dirty_lessons.clear()
        self._changed_devices.clear()
        self._send(batches, points)
        if now >= self._next_sweep:
            self._next_sweep = now + 10.0
            self._sweep(now)

    def _send(
        self, batches: dict[str, ppb.MetricBatch], points: dict[str, list[bytes]] | None = None
    ) -> None:
        """One MetricBatch per classroom. ``points`` (field 1 entries, wire bytes) go first: the
        value is then the bytes upb writes for the same message (fields in number order)."""
        for classroom, wire in (points or {}).items():
            batch = batches.pop(classroom, None)
            rest = batch.SerializeToString() if batch is not None else b""
            self._out.metrics(classroom.encode(), b"".join(wire) + rest)
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
            throttle = self._summaries
            for key in list(throttle.pending):
                lesson = self._lessons.get(key)
                if lesson is None:
                    throttle.pending.discard(key)
                elif throttle.due(key, now) and throttle.send(
                    key, lesson, now, summary_sink(batch_of, lesson.classroom_id)
                ):
                    self.stats.summaries += 1
            self._load_books()
            now_ms = int(now * 1000)
            offline: list[str] = []
            for classroom, book in self._books.items():
                for device in book.newly_offline(now_ms):
                    offline.append(f"{classroom}/{device}")
                    batch_of(classroom).devices.append(book.status(device, now_ms))
            if offline:  # one line per tick: a school's outage is thousands of devices at once
                logger.info("devices offline n=%d: %s", len(offline), " ".join(offline[:20]))
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
        retention_ms = self.config.window_retention_s * 1000
        backstop_ms = (now - _MAX_EVENT_AGE_S) * 1000  # older than any valid event: idle classrooms
        marks = self._watermark

        def expired(w: WindowState) -> bool:
            end = w.start_ms + WINDOW_MS
            return end < marks.get(w.classroom_id, 0) - retention_ms or end < backstop_ms

        for key in [k for k, w in self._windows.items() if expired(w)]:
            window = self._windows.pop(key)
            self._tables[1].put(self._partition[window.classroom_id], key, None)
        for key in [k for k, t in self._touched.items() if now - t > self.config.idle_lesson_s]:
            lesson = self._lessons.get(key)
            if lesson is not None and lesson.final and key not in self._summaries.pending:
                del self._lessons[key]
                del self._touched[key]

    def forget(self) -> None:
        """Drop every cached object (partitions were revoked: their values may change elsewhere)."""
        self._lessons.clear()
        self._windows.clear()
        self._books.clear()
        self._summaries.pending.clear()
        self._touched.clear()
