"""Bounded worker state (docs/DESIGN.md §10): lessons and devices leave the tables after the horizon.

Each test drives the processor with DictTable stand-ins and a clock it sets: many simulated days
in milliseconds of real time.
"""

from __future__ import annotations

from classtrace.v1 import events_pb2 as pb
from stream_processors.lesson_state import summary_fingerprint
from stream_processors.processor import Processor, ProcessorConfig, Record
from tests.helpers.lessons import chunks, recorded_lesson
from tests.helpers.worker_tables import DictTable, Sink

DAY_MS = 86_400_000
ROOM = b"sch-0001/room-101"
START = 1_700_000_000_000  # a Tuesday in Nov 2023: unit tests never write to storage


class LoggedTable(DictTable):
    """A DictTable that keeps its changelog: the keys tombstoned, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tombstones: list[str] = []

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        super().put(partition, key, value)
        if value is None:
            self.tombstones.append(key)


class Stack:
    """A processor on logged tables with a settable clock (seconds)."""

    def __init__(self, tables: tuple[LoggedTable, LoggedTable, LoggedTable] | None = None, **config: float):
        self.now = START / 1000
        self.tables = tables or (LoggedTable(), LoggedTable(), LoggedTable())
        self.sink = Sink()
        self.proc = Processor(
            *self.tables, self.sink, ProcessorConfig(summary_interval_s=0.0, **config), clock=lambda: self.now
        )
        self.offset = 0

    def send(self, events: list[pb.Event], key: bytes = ROOM) -> None:
        for value in chunks(events, 50):
            self.proc.process_records([Record("classtrace.events.v1", 0, self.offset, key, value)])
            self.offset += 1

    def at(self, ms: int) -> None:
        """Let wall time reach ``ms`` and run the timer and a sweep (an empty batch flushes)."""
        self.now = ms / 1000
        self.proc.tick()
        self.proc.process_records([])

    def summaries(self, lesson: str) -> list:
        return [s for b in self.sink.batches for s in b.summaries if s.lesson_id == lesson]


def day_lesson(day: int, seed: int | None = None) -> list[pb.Event]:
    return recorded_lesson(seed=seed or day + 1, lesson=f"lesson-{day:03d}", start_ms=START + day * DAY_MS)


def test_state_stays_bounded_over_many_days():
    stack = Stack()
    sizes = []
    for day in range(30):
        stack.send(day_lesson(day))
        stack.at(START + day * DAY_MS + 3_600_000)  # an hour after the lesson, wall = event time
        sizes.append((len(stack.tables[0].data), len(stack.tables[1].data), len(stack.tables[2].data)))
    # 7-day horizon, an hour after today's lesson: today's and the 6 before it; flat from day 6 on
    assert [s[0] for s in sizes] == [1, 2, 3, 4, 5, 6] + [7] * 24
    assert max(s[1] for s in sizes) == sizes[0][1]  # windows: only the latest lesson's (30 min)
    assert sizes[-1][2] == 1  # one classroom, one book
    lessons = stack.tables[0]
    assert set(lessons.data) == {
        f"sch-0001/room-101/lesson-{d:03d}" for d in range(30 - len(lessons.data), 30)
    }
    gone = [f"sch-0001/room-101/lesson-{d:03d}" for d in range(30 - len(lessons.data))]
    assert sorted(set(lessons.tombstones)) == gone  # each evicted lesson left a tombstone
    assert not stack.proc.stats.late_dropped


def test_late_event_for_evicted_lesson_is_dropped_not_summarised():
    stack = Stack()
    first = day_lesson(0)
    stack.send(first)
    final = stack.summaries("lesson-000")[-1]
    assert final.final
    stack.send(day_lesson(8))
    stack.at(START + 8 * DAY_MS + 3_600_000)
    assert "sch-0001/room-101/lesson-000" in stack.tables[0].tombstones
    before = len(stack.summaries("lesson-000"))
    started = [e for e in first if e.WhichOneof("payload") == "lesson"][:1]  # its STARTED, redelivered
    traces = [e for e in first if e.WhichOneof("payload") == "trace"][:5]
    stack.send(started + traces)
    stack.at(START + 8 * DAY_MS + 3_700_000)
    assert len(stack.summaries("lesson-000")) == before  # no partial summary replaces the final one
    assert "sch-0001/room-101/lesson-000" not in stack.tables[0].data
    assert stack.proc.stats.late_dropped == 6


def test_backfill_keeps_lessons_until_the_rooms_event_time_passes_the_horizon():
    """A short horizon (the soak's) is measured on the room's event time, not on wall clock."""
    stack = Stack(state_horizon_s=3600.0)
    three_days_ago = START - 3 * DAY_MS
    first = recorded_lesson(seed=3, lesson="lesson-a", start_ms=three_days_ago)
    second = recorded_lesson(seed=4, lesson="lesson-b", start_ms=three_days_ago + 2 * 3_600_000)
    reference = Stack()
    reference.send(first)
    stack.send(first)
    stack.at(START + 20_000)
    assert "sch-0001/room-101/lesson-a" in stack.tables[0].data  # wall clock alone evicts nothing
    stack.send(second)
    stack.at(START + 40_000)
    assert "sch-0001/room-101/lesson-a" not in stack.tables[0].data
    assert "sch-0001/room-101/lesson-b" in stack.tables[0].data
    assert summary_fingerprint(stack.summaries("lesson-a")[-1]) == summary_fingerprint(
        reference.summaries("lesson-a")[-1]
    )


def test_lessons_restored_from_the_changelog_are_evicted_too():
    before = Stack()
    before.send(day_lesson(0))
    before.send(day_lesson(1))
    restored = tuple(LoggedTable() for _ in range(3))
    for old, new in zip(before.tables, restored, strict=True):
        new.data = dict(old.data)  # a new worker recovers the values, not the cache
    after = Stack(restored)  # type: ignore[arg-type]
    after.at(START + DAY_MS + 3_600_000)
    assert len(restored[0].data) == 2  # within the horizon: kept
    after.at(START + 8 * DAY_MS)  # wall backstop: the classroom sent nothing since the restart
    assert restored[0].tombstones == ["sch-0001/room-101/lesson-000"]
    assert list(restored[0].data) == ["sch-0001/room-101/lesson-001"]
    after.at(START + 9 * DAY_MS)
    assert not restored[0].data
    assert restored[2].tombstones == ["sch-0001/room-101"]  # its devices went silent too


def test_a_device_silent_beyond_the_horizon_leaves_its_book():
    stack = Stack()
    retired = day_lesson(0)[0]
    retired.device_id, retired.seq, retired.event_id = "tab-old", 1, "9" * 8 + "-0000-4000-8000-" + "0" * 12
    retired.lesson_id = ""
    retired.heartbeat.CopyFrom(pb.DeviceHeartbeat(battery_pct=50, interval_s=30, firmware="1.0"))
    stack.send([retired])
    for day in (1, 5, 9):
        stack.send(day_lesson(day))
        stack.at(START + day * DAY_MS + 3_600_000)
    book = stack.tables[2].data["sch-0001/room-101"]
    assert b"tab-old" not in book and b"cam-1" in book
