"""Workers that share the partitions: one joins mid-lesson, the other leaves, and every lesson's
final summary is still the one a single uninterrupted worker gives — state moves through the
changelogs, and records delivered again to the new owner are not counted twice. Each worker's
recovery went through the one Faust shim (stream_processors.delivery): a Faust release that no
longer seeks with the flow running fails here, and the shim can be reviewed."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

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
        # Both workers have recovered from the join (each recovery logs the seek shim) before the
        # first leaves: the second's start takes longer than the sends above, and without this
        # wait the first had often left before the second joined — no shared rebalance at all.
        _until(
            lambda: first.seeks_with_flow_stopped() >= 2 and second.seeks_with_flow_stopped() >= 1,
            90,
            "both workers' recovery from the join",
            second,
        )
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
    # Every recovery seeks to the committed offsets with the flow running, and the shim stopped
    # it: the first worker's at its start and when the second joined, the second's when it
    # joined and when the first left.
    seeks = [w.seeks_with_flow_stopped() for w in (first, second)]
    assert min(seeks) >= 2, f"the seek shim should have run in every recovery: {seeks}"


def _until(done: Callable[[], bool], timeout: float, what: str, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{worker.output()[-3000:]}"
        assert worker.proc is not None and worker.proc.poll() is None, (
            f"worker exited:\n{worker.output()[-3000:]}"
        )
        time.sleep(0.2)


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
