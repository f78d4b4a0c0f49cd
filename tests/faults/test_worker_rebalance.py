"""Workers that share the partitions: one joins mid-lesson, the other leaves, and every lesson's
final summary is still the one a single uninterrupted worker gives — state moves through the
changelogs, and records delivered again to the new owner are not counted twice."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from classtrace.topics import EVENTS
from tests.helpers.lessons import chunks, recorded_lesson
from tests.helpers.worker_harness import MetricsReader, WorkerProcess, comparable, produce

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(300)]

ROOMS = [f"room-{n}" for n in range(6)]


def test_a_worker_joining_and_another_leaving_mid_lesson_change_no_summary(fresh_broker, tmp_path):
    bootstrap = fresh_broker.bootstrap
    app_id = f"share-{uuid.uuid4().hex[:8]}"
    start_ms = (int(time.time()) - 900) * 1000
    records = {
        room: chunks(recorded_lesson(seed=33, start_ms=start_ms, classroom=room, lesson=f"{room}-l"), 25)
        for room in ROOMS
    }
    third = len(records[ROOMS[0]]) // 3

    def send(part: slice) -> None:
        produce(bootstrap, EVENTS, [(room.encode(), v) for room in ROOMS for v in records[room][part]])

    metrics = MetricsReader(bootstrap)
    first = WorkerProcess(bootstrap, tmp_path / "a", app_id, partitions=4).start()
    second = WorkerProcess(bootstrap, tmp_path / "b", app_id, partitions=4)
    try:
        send(slice(0, third))
        metrics.poll_until(
            lambda: all(metrics.summaries(f"{room}-l") for room in ROOMS), 120, "live summaries", first
        )
        second.start()  # joins the group: partitions move to it while records keep coming
        for k in range(third, 2 * third, 4):
            send(slice(k - 1, k + 4))  # each step overlaps the last: duplicates across owners
            time.sleep(0.5)
        first.stop()  # leaves: the second worker takes every partition, restoring their state
        send(slice(2 * third - 2, None))  # the rest, ENDED included, with two records again
        metrics.poll_until(
            lambda: all(metrics.final(f"{room}-l") is not None for room in ROOMS), 150, "finals", second
        )
        finals = {comparable(metrics.final(f"{room}-l")) for room in ROOMS}  # type: ignore[arg-type]
        reference = _single_worker_summary(tmp_path, start_ms)
        assert finals == {reference}
    finally:
        metrics.close()
        for worker in (first, second):
            if worker.proc is not None:
                worker.stop()
    counted = [_records(w.output()) for w in (first, second)]
    assert all(n > 0 for n in counted), f"both workers should have processed records: {counted}"


def _records(log: str) -> int:
    found = re.search(r"worker stopped records=(\d+)", log)
    return int(found[1]) if found else 0


def _single_worker_summary(tmp_path, start_ms: int) -> bytes:  # type: ignore[no-untyped-def]
    """The same lesson through the processor alone, in order, once: the expected final."""
    from stream_processors.processor import Processor, ProcessorConfig, Record
    from tests.helpers.worker_tables import DictTable, Sink

    sink = Sink()
    proc = Processor(DictTable(), DictTable(), DictTable(), sink, ProcessorConfig(summary_interval_s=0.0))
    room = "room-solo"
    values = chunks(recorded_lesson(seed=33, start_ms=start_ms, classroom=room, lesson=f"{room}-l"), 25)
    proc.process_records([Record(EVENTS, 0, n, room.encode(), v) for n, v in enumerate(values)])
    proc.tick()
    return comparable(sink.final_summary())
