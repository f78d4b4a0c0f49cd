"""The worker's logic without Faust: records in, table values and MetricBatch records out.

Faust's cost is per record and per table write (docs/FIELD-NOTES.md), so the processor works on a
*batch of records* at a time and writes each touched value once per batch, not once per event
or record. Everything in :meth:`Processor.process_records` is synchronous: between the first
event applied and the last table write no other coroutine runs, so the in-memory state never
holds changes that are not on their way to the changelog when a rebalance or timer fires.
Records are acknowledged by the caller only after this returns, hence at-least-once: after a
crash the uncommitted records come again, and each value's own SeenEvents skips what it holds.

Events on classtrace.events.v1 are trusted (docs/DESIGN.md §9): every writer validated them.
The worker does not judge them again; it only guards against what it cannot read. A record
that does not decode, has no key, or makes the processor raise becomes a ``DeadLetter`` and
processing goes on — an exception escaping into Faust would hang the worker (docs/FIELD-NOTES.md).
Every formula lives in :mod:`stream_processors.metrics` and the state classes; this module
only routes each event's fields to them (:meth:`Processor._apply_batch`).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson

from classtrace import deadletters
from classtrace.codec import decode_batch, ts_to_ns
from classtrace.erasure import Erasure, ErasureSet
from classtrace.errors import DecodeError
from classtrace.identity import SEPARATOR, room_key, split_room
from classtrace.signing import Headers, RecordKey
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from classtrace.validation import MAX_AGE
from stream_processors.lesson_state import LessonState
from stream_processors.metrics.alerts import LessonAlerts, device_alert
from stream_processors.metrics.windows import WINDOW_MS
from stream_processors.summaries import SummaryThrottle, summary_sink
from stream_processors.window_state import DeviceBook, WindowState

__all__ = ["Outputs", "Processor", "ProcessorConfig", "Record", "StateTable", "Stats"]

logger = logging.getLogger(__name__)

_MAX_EVENT_AGE_S = MAX_AGE.total_seconds()  # validation's horizon (docs/DESIGN.md §4)
_SCAN_PER_SWEEP = 2000
"""Table keys the slow pass reads per 10 s sweep: ~40 ms of orjson on 8 kB lessons, a bounded pause."""


class ErasureSource(Protocol):
    """Where the worker learns of erasures (:class:`classtrace.erasure.ErasureFollower`)."""

    known: ErasureSet

    def drain(self) -> list[Erasure]: ...


class StateTable(Protocol):
    """A changelogged key → bytes table (a Faust table in the worker, a dict in unit tests)."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        """Store ``value`` (None deletes) and log it to changelog ``partition``."""

    def iter_keys(self) -> Iterator[str]:
        """A snapshot of the keys (safe to iterate while the table changes)."""


class Outputs(Protocol):
    """Where results go: classtrace.metrics.v1, classtrace.alerts.v1 and classtrace.deadletter.v1."""

    def metrics(self, key: bytes, value: bytes) -> None: ...

    def alerts(self, key: bytes, value: bytes) -> None: ...

    def dead_letter(self, key: bytes | None, value: bytes) -> None: ...


@dataclass(frozen=True)
class Record:
    """One record of classtrace.events.v1 as the consumer saw it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = None
    """The record's headers: its ``ct-sig`` signature (classtrace/signing.py)."""


@dataclass(frozen=True)
class ProcessorConfig:
    """Tunables of the processor; the defaults are the product's."""

    summary_interval_s: float = 1.0
    """Live lesson summaries are emitted at most this often per lesson (finals at once)."""
    window_retention_s: float = 1800.0
    """Windows are kept (and a late event re-emits its window) this long after they end."""
    idle_lesson_s: float = 600.0
    """A finished lesson leaves memory after this long without events (its table value stays)."""
    state_horizon_s: float = _MAX_EVENT_AGE_S
    """A lesson, and a device in a book, is deleted (table tombstone) once its latest event is this
    far behind its classroom's event-time watermark, or behind wall clock by max(this, 7 d); an event
    of an unknown lesson older than that is dropped (docs/DESIGN.md §10). 7 d = validation's MAX_AGE."""
    state_scan_s: float = 600.0
    """A slow pass over every lesson key of the table (values restored from the changelog, lessons
    no longer cached) starts at most this often; it reads ``_SCAN_PER_SWEEP`` keys per sweep."""
    keep_raw: bool = False
    """Dead letters keep the record's bytes, not only their digest (CLASSTRACE_DEADLETTER_KEEP_RAW)."""


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
    alerts: int = 0
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
        erasures: ErasureSource | None = None,
        record_key: RecordKey | None = None,
    ) -> None:
        self._tables = (lessons, windows, devices)
        self._resummarise = True  # see _summarise_restored
        # Given: a record not signed with it was not written by a validating writer (docs/DESIGN.md
        # §9) but by whoever reached the broker, and is dead-lettered, never counted.
        self._record_key = record_key
        self._erasures = erasures
        self._erased = erasures.known if erasures is not None else ErasureSet()
        self._out = outputs
        self.config = config or ProcessorConfig()
        self._clock = clock
        self.stats = Stats()
        self._lessons: dict[str, LessonState] = {}
        self._windows: dict[str, WindowState] = {}
        self._books: dict[str, DeviceBook] = {}
        # Per-classroom maps are keyed by classtrace.identity.room_key: "school_id/classroom_id".
        self._partition: dict[str, int] = {}  # classroom → partition of its records
        # classroom → latest occurred_at (ms) seen: window lateness is measured in event time, so
        # a backfill or a simulator running in the past keeps its windows (wall clock would not).
        self._watermark: dict[str, int] = {}
        self._dirty_lessons: set[LessonState] = set()  # counted a new event since the last flush
        self._dirty_windows: set[WindowState] = set()
        self._changed_devices: dict[str, set[str]] = {}
        self._summaries = SummaryThrottle(self.config.summary_interval_s)
        self._lesson_alerts = LessonAlerts()
        self._alerts: list[tuple[str, ppb.Alert]] = []  # (room_key, alert) to send with the batch
        self._touched: dict[str, float] = {}  # lesson → wall time of its last event
        self._next_sweep = 0.0
        self._scan: Iterator[str] | None = None  # the slow pass's cursor over the lesson keys
        self._next_scan = 0.0

    # --- records in -----------------------------------------------------------------------------

    def process_records(self, records: Iterable[Record]) -> None:
        """Apply a batch of records, then write every touched value once and emit the results."""
        now = self._clock()
        stats = self.stats
        stats.batches += 1
        self._take_erasures(now)
        if self._resummarise:
            self._resummarise = False
            self._summarise_restored()
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
                # The type only: an exception's text may quote a value of the event.
                self._dead_letter(record, f"worker error: {type(exc).__name__}", record.value or b"", now)
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
        if self._record_key is not None:
            why = self._record_key.problem(record.topic, record.key, record.value, record.headers)
            if why is not None:
                logger.warning(
                    "record dead-lettered topic=%s partition=%d offset=%d: %s",
                    record.topic, record.partition, record.offset, why,
                )  # fmt: skip
                self._dead_letter(record, why, value, now)
                return
        try:
            batch = decode_batch(value, topic=record.topic, partition=record.partition, offset=record.offset)
        except DecodeError as exc:
            self._dead_letter(record, str(exc), value, now)
            return
        events = batch.events
        room = _room_of(record.key, events)
        if room is None:
            why = "record has no key" if not record.key else "record key is not school_id/classroom_id"
            self._dead_letter(record, f"{why}: events records are keyed by school_id/classroom_id",
                              value, now)  # fmt: skip
            return
        self._partition[room[0]] = record.partition
        if self._erased:  # costs nothing per event until the first erasure
            self._erased.scrub(events, "anonymise")
        self._apply_batch(room, events)

    def _apply_batch(self, room: tuple[str, str, str], events: Sequence[pb.Event]) -> None:
        """Count one record's events: the worker's hot loop.

        The window and lesson are looked up when they change from one event to the next, not
        per event: a record holds one classroom's events, mostly in time order. ``room`` is the
        record's ``(room_key, school_id, classroom_id)``: new state takes its school from the key,
        which the gateway or SDK set from the device's binding. Every event goes
        through each aggregate's own dedup; its payload reaches the aggregates only when new.
        """
        stats = self.stats
        dirty_windows, dirty_lessons = self._dirty_windows, self._dirty_lessons
        window: WindowState | None = None
        window_start = -1
        lesson: LessonState | None = None
        lesson_now = ""
        duplicates = dropped = 0
        classroom = room[0]
        mark = self._watermark.get(classroom, 0)
        for event in events:
            occurred_ns = ts_to_ns(event.occurred_at)
            occurred = occurred_ns // 1_000_000  # = codec.ts_to_ms, without reading the fields twice
            if occurred > mark:  # noqa: PLR1730 - cheaper than max() in the hot loop
                mark = occurred
            payload = event.WhichOneof("payload")
            event_id, device_id, seq, lesson_id = event.event_id, event.device_id, event.seq, event.lesson_id
            start = occurred - occurred % WINDOW_MS
            if start != window_start:
                window_start = start
                window = self._window(room, start, mark)
            fresh = False
            late = window is None
            if window is not None and window.count(device_id, seq, event_id, lesson_id):
                dirty_windows.add(window)
                fresh = True
                if payload == "observation":
                    window.observe(event.observation)
            if lesson_id:
                if lesson is None or lesson_id != lesson_now:
                    lesson_now = lesson_id
                    lesson = self._lesson(room, lesson_id, occurred, mark)
                if lesson is None:
                    late = True
                elif lesson.count(device_id, seq, event_id, occurred):
                    dirty_lessons.add(lesson)
                    fresh = True
                    lesson.add(payload, event, occurred, occurred_ns)
            dropped += late  # once per event, whether its window, its lesson or both were gone
            if payload == "heartbeat":
                fresh |= self._take_heartbeat(room, event, occurred)
            if not fresh:
                duplicates += 1
        self._watermark[classroom] = mark
        stats.events += len(events)
        stats.duplicates += duplicates
        stats.late_dropped += dropped

    def _take_heartbeat(self, room: tuple[str, str, str], event: pb.Event, occurred: int) -> bool:
        book = self._book(room)
        if not book.take(event, occurred):
            return False
        self._changed_devices.setdefault(room[0], set()).add(event.device_id)
        return True

    # --- state lookup ---------------------------------------------------------------------------

    def _lesson(
        self, room: tuple[str, str, str], lesson_id: str, occurred_ms: int, mark_ms: int
    ) -> LessonState | None:
        """The lesson's state, new if unknown; None for an unknown lesson beyond the horizon.

        An event of an evicted lesson is older than the horizon (its lesson's latest event was), so
        it is dropped: a new partial lesson would replace the final summary stored for it.
        """
        key = LessonState.key_of(room[0], lesson_id)
        state = self._lessons.get(key)
        if state is None:
            raw = self._tables[0].get(key)
            if raw:
                state = LessonState.from_bytes(raw)
            elif occurred_ms < self._floor_ms(mark_ms, self._clock()):
                return None
            else:
                state = LessonState(room[2], lesson_id, room[1])
            self._lessons[key] = state
        return state

    def _window(self, room: tuple[str, str, str], start_ms: int, mark_ms: int) -> WindowState | None:
        key = WindowState.key_of(room[0], start_ms)
        state = self._windows.get(key)
        if state is None:
            raw = self._tables[1].get(key)
            if raw:
                state = WindowState.from_bytes(raw)
            elif start_ms + WINDOW_MS < mark_ms - self.config.window_retention_s * 1000:
                return None  # evicted: a fresh partial point would replace the complete one
            else:
                state = WindowState(room[2], start_ms, room[1])
            self._windows[key] = state
        return state

    def _book(self, room: tuple[str, str, str]) -> DeviceBook:
        key = room[0]
        book = self._books.get(key)
        if book is None:
            raw = self._tables[2].get(key)
            book = DeviceBook.from_bytes(raw) if raw else DeviceBook(room[2], room[1])
            self._books[key] = book
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

        partition = self._partition
        for window in self._dirty_windows:
            room = window.room
            windows.put(partition[room], window.key, window.to_bytes())
            window.add_points(batch_of(room))
        for lesson in self._dirty_lessons:
            key = lesson.key
            lesson.partition = partition.get(lesson.room, lesson.partition)
            lessons.put(lesson.partition, key, lesson.to_bytes())
            self._touched[key] = now
            if self._summaries.changed(key, lesson, now, summary_sink(batch_of, lesson.room)):
                self.stats.summaries += 1
            self._check_lesson_alert(lesson)
        now_ms = int(now * 1000)
        for classroom, changed in self._changed_devices.items():
            book = self._books[classroom]
            self._report_devices(book, sorted(changed), now_ms, batch_of(classroom))
            devices.put(self._partition[classroom], classroom, book.to_bytes())
        self._dirty_windows.clear()
        self._dirty_lessons.clear()
        self._changed_devices.clear()
        self._send(batches)
        if now >= self._next_sweep:
            self._next_sweep = now + 10.0
            self._sweep(now)

    def _send(self, batches: dict[str, ppb.MetricBatch]) -> None:
        """One MetricBatch record per classroom, keyed by its room_key; one record per alert."""
        for classroom, batch in batches.items():
            self._out.metrics(classroom.encode(), batch.SerializeToString())
        for classroom, alert in self._alerts:
            self._out.alerts(classroom.encode(), alert.SerializeToString())
        self.stats.alerts += len(self._alerts)
        self._alerts.clear()

    def _check_lesson_alert(self, lesson: LessonState) -> None:
        """Raise or clear the lesson's low_attention alert (the rule: metrics/alerts.py), in event time."""
        live = lesson.start is not None and lesson.end is None
        at_ms = lesson.end[0] if lesson.end is not None else lesson.latest_ms
        scope = (lesson.school_id, lesson.classroom_id, lesson.lesson_id)
        alert = self._lesson_alerts.check(
            lesson.key, scope, live, lesson.attention.rate() if live else None, at_ms
        )
        if alert is not None:
            self._alerts.append((lesson.room, alert))

    def _report_devices(
        self, book: DeviceBook, device_ids: Iterable[str], now_ms: int, batch: ppb.MetricBatch
    ) -> None:
        """Each device's status into ``batch``, and the device_offline alert it raises or clears."""
        for device_id in device_ids:
            status, offline_since = book.report(device_id, now_ms)
            batch.devices.append(status)
            alert = device_alert(status, offline_since, now_ms)
            if alert is not None:
                self._alerts.append((room_key(book.school_id, book.classroom_id), alert))

    def _dead_letter(
        self, record: Record, error: str, raw: bytes, now: float, event: pb.Event | None = None
    ) -> None:
        """Dead-letter ``record`` via :mod:`classtrace.deadletters`: a digest, the bytes with ``keep_raw``.

        ``error`` must name the failure without quoting the record (docs/DESIGN.md §4).
        """
        self.stats.dead_letters += 1
        letter = deadletters.for_record(
            raw,
            error,
            source="worker",
            received_ns=int(now * 1e9),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            event=event,
            keep_raw=self.config.keep_raw,
        )
        logger.debug(
            "dead letter topic=%s offset=%d raw_sha256=%s", record.topic, record.offset, letter.raw_sha256
        )
        self._out.dead_letter(record.key, letter.SerializeToString())

    # --- timer ----------------------------------------------------------------------------------

    def tick(self) -> None:
        """Run periodically: throttled summaries that are due, and device_offline checks."""
        now = self._clock()
        batches: dict[str, ppb.MetricBatch] = {}

        def batch_of(classroom: str) -> ppb.MetricBatch:
            return batches.setdefault(classroom, ppb.MetricBatch())

        self._take_erasures(now)
        try:
            throttle = self._summaries
            for key in list(throttle.pending):
                lesson = self._lessons.get(key)
                if lesson is None:
                    throttle.pending.discard(key)
                elif throttle.due(key, now) and throttle.send(
                    key, lesson, now, summary_sink(batch_of, lesson.room)
                ):
                    self.stats.summaries += 1
            self._load_books()
            now_ms = int(now * 1000)
            offline: list[str] = []
            for classroom, book in self._books.items():
                found = book.newly_offline(now_ms)
                if not found:
                    continue
                offline.extend(f"{classroom}/{device}" for device in found)
                self._report_devices(book, found, now_ms, batch_of(classroom))
                partition = self._partition.get(classroom)
                if partition is not None:  # else written with its next heartbeat
                    self._tables[2].put(partition, classroom, book.to_bytes())
            if offline:  # one line per tick: a school's outage is thousands of devices at once
                logger.info("devices offline n=%d: %s", len(offline), " ".join(offline[:20]))
            self._send(batches)
        except Exception:
            self.stats.errors += 1
            logger.exception("tick failed")

    def _take_erasures(self, now: float) -> None:
        """Anonymise every stored lesson of the people erased since the last call (docs/ERASURE.md).

        Erasures are rare and each walks the lesson table once; the changed lessons are written
        back (their changelog records replace the ones naming the person) and re-summarised.
        """
        if self._erasures is None:
            return
        try:
            new = self._erasures.drain()
            if not new:
                return
            lessons, changed, stranded = self._tables[0], 0, 0
            for key in lessons.iter_keys():
                state = self._lessons.get(key)
                if state is None:
                    raw = lessons.get(key)
                    state = LessonState.from_bytes(raw) if raw else None
                if state is None or not state.anonymise(self._erased):
                    continue
                if self._partition.get(state.room, state.partition) < 0:
                    stranded += 1  # written before lessons kept their partition: see ERASURE.md
                    continue
                self._lessons[key] = state
                self._dirty_lessons.add(state)
                changed += 1
            logger.info("erasures applied n=%d lessons_changed=%d stranded=%d", len(new), changed, stranded)
            self._flush(now)
        except Exception:
            self.stats.errors += 1
            logger.exception("applying erasures failed")

    def _load_books(self) -> None:
        """Device books restored from the changelog are watched even before their next heartbeat."""
        devices = self._tables[2]
        for key in devices.iter_keys():
            # Books written before 0.3 (keyed by the classroom alone) are left to the next heartbeat.
            if key not in self._books and SEPARATOR in key:
                raw = devices.get(key)
                if raw:
                    self._books[key] = DeviceBook.from_bytes(raw)

    def _sweep(self, now: float) -> None:
        """Drop expired windows, lessons and silent devices (memory and table tombstone), and idle
        finished lessons from memory (docs/DESIGN.md §10)."""
        retention_ms = self.config.window_retention_s * 1000
        backstop_ms = (now - _MAX_EVENT_AGE_S) * 1000  # older than any valid event: idle classrooms
        marks = self._watermark

        def expired(w: WindowState) -> bool:
            end = w.start_ms + WINDOW_MS
            return end < marks.get(w.room, 0) - retention_ms or end < backstop_ms

        for key in [k for k, w in self._windows.items() if expired(w)]:
            window = self._windows.pop(key)
            self._tables[1].put(self._partition[window.room], key, None)
        for key in [k for k, t in self._touched.items() if now - t > self.config.idle_lesson_s]:
            lesson = self._lessons.get(key)
            if lesson is not None and lesson.final and key not in self._summaries.pending:
                del self._lessons[key]
                del self._touched[key]
        self._evict_lessons(now)

    # --- state horizon (docs/DESIGN.md §10) ------------------------------------------------------

    def _floor_ms(self, mark_ms: int, now: float) -> int:
        """Event time before which a classroom's state is beyond the horizon.

        By its event-time watermark (a backfill keeps its lessons), with a wall-clock backstop of
        max(horizon, validation's 7 d) for classrooms that went quiet.
        """
        horizon = self.config.state_horizon_s
        backstop_ms = (now - max(horizon, _MAX_EVENT_AGE_S)) * 1000
        return int(max(mark_ms - horizon * 1000, backstop_ms))

    def _evict_lessons(self, now: float) -> None:
        """Delete lessons beyond the horizon: the cached ones each sweep, the table's in a slow pass.

        The slow pass reaches the values restored from the changelog and lessons no longer
        cached; it reads ``_SCAN_PER_SWEEP`` keys per sweep so a large table never stalls the loop.
        """
        marks = self._watermark
        for key in [
            k for k, s in self._lessons.items() if s.latest_ms < self._floor_ms(marks.get(s.room, 0), now)
        ]:
            state = self._lessons[key]
            self._evict_lesson(key, self._partition.get(state.room, state.partition))
        if self._scan is None:
            if now < self._next_scan:
                return
            self._next_scan = now + self.config.state_scan_s
            self._scan = self._tables[0].iter_keys()
            self._evict_devices(now)
        keys = list(itertools.islice(self._scan, _SCAN_PER_SWEEP))
        if len(keys) < _SCAN_PER_SWEEP:
            self._scan = None
        lessons = self._tables[0]
        for key in keys:
            raw = None if key in self._lessons else lessons.get(key)
            if not raw:
                continue
            obj = orjson.loads(raw)
            room, partition = room_key(obj["s"], obj["c"]), obj.get("p", -1)
            if partition >= 0:  # also where the room's device book is logged, after a restart
                partition = self._partition.setdefault(room, partition)
            if obj["latest"] < self._floor_ms(marks.get(room, 0), now):
                self._evict_lesson(key, partition)

    def _evict_lesson(self, key: str, partition: int) -> None:
        """Tombstone one lesson and forget everything kept for it in memory."""
        if key in self._summaries.pending:
            return  # its last summary goes out first (next tick); evicted next sweep
        if partition < 0:  # written before lessons kept their partition, no record since
            logger.warning("lesson beyond the horizon kept: changelog partition unknown key=%s", key)
            return
        self._tables[0].put(partition, key, None)
        self._lessons.pop(key, None)
        self._touched.pop(key, None)
        self._summaries.forget(key)

    def _evict_devices(self, now: float) -> None:
        """Drop devices silent beyond the horizon from their books; an empty book is deleted."""
        devices, marks = self._tables[2], self._watermark
        for room, book in list(self._books.items()):
            partition = self._partition.get(room, -1)
            if partition < 0 or not book.forget_before(self._floor_ms(marks.get(room, 0), now)):
                continue  # nothing dropped, or not written since the restart (next heartbeat will)
            if book.devices:
                devices.put(partition, room, book.to_bytes())
            else:
                devices.put(partition, room, None)
                del self._books[room]

    def _summarise_restored(self) -> None:
        """Send the summary of every stored lesson still in progress, once, after a (re)start.

        A lesson's summary is throttled, so a worker killed inside the throttle window had counted
        events (already in the changelog) whose summary it never sent; if that lesson then gets no
        new event, ClickHouse would keep the older, lower figures for good (seen under
        ``classtrace loadtest --faults worker``). Ended lessons need nothing: their final summary
        is sent at once. Runs at the first batch after a start or a rebalance, after Faust has
        restored the tables.
        """
        lessons = self._tables[0]
        for key in lessons.iter_keys():
            if key in self._lessons:
                continue
            raw = lessons.get(key)
            state = LessonState.from_bytes(raw) if raw else None
            if state is not None and not state.final:
                self._lessons[key] = state
                self._summaries.pending.add(key)

    def forget(self) -> None:
        """Drop every cached object (partitions were revoked: their values may change elsewhere)."""
        self._resummarise = True
        self._lessons.clear()
        self._windows.clear()
        self._books.clear()
        self._summaries.pending.clear()
        self._touched.clear()
        self._scan = None  # the keys it walks may have moved to another worker


def _room_of(key: bytes | None, events: Sequence[pb.Event]) -> tuple[str, str, str] | None:
    """``(room_key, school_id, classroom_id)`` of an events record, or None if it names none.

    Records are keyed ``school_id/classroom_id``. A record keyed by the classroom alone (written
    before 0.3) takes its school from its first event: the gateway and SDK put one device's
    classroom, hence one school, in a record.
    """
    if not key:
        return None
    text = key.decode("utf-8", "replace")
    try:
        school, classroom = split_room(text)
    except ValueError:
        if SEPARATOR in text or not events or not events[0].school_id:
            return None
        school, classroom = events[0].school_id, text
        text = room_key(school, classroom)
    return text, school, classroom
