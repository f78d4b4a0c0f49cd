"""classtrace worker over the real broker: a recorded lesson replayed in order, shuffled and with
duplicates yields identical summaries; records the worker cannot use (undecodable, unkeyed) are
dead-lettered and the stream goes on. Events on the topic are trusted (their writers validated
them: docs/DESIGN.md §9), so the worker does not re-judge their fields."""

from __future__ import annotations

import random
import time
import uuid

import pytest

from classtrace.topics import EVENTS
from classtrace.v1 import events_pb2 as pb
from tests.helpers.lessons import chunks, recorded_lesson
from tests.helpers.worker_harness import DeadLetterReader, MetricsReader, WorkerProcess, comparable, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]


def test_replay_in_order_shuffled_and_duplicated_gives_identical_summaries(fresh_broker, tmp_path):
    bootstrap = fresh_broker.bootstrap
    rng = random.Random(42)
    start_ms = (int(time.time()) - 900) * 1000  # one clock for every copy of the lesson
    in_order = recorded_lesson(seed=9, start_ms=start_ms, classroom="room-a", lesson="lesson-a")
    shuffled = recorded_lesson(seed=9, start_ms=start_ms, classroom="room-b", lesson="lesson-b")
    rng.shuffle(shuffled)
    duplicated = recorded_lesson(seed=9, start_ms=start_ms, classroom="room-c", lesson="lesson-c")
    duplicated = duplicated + rng.sample(duplicated, len(duplicated) // 2)
    rng.shuffle(duplicated)

    unkeyed = recorded_lesson(seed=9, start_ms=start_ms, classroom="room-b", lesson="lesson-b")[5:6]
    records: list[tuple[bytes | None, bytes]] = [(b"room-b", b"\x00not protobuf")]
    records.append((None, pb.EventBatch(events=unkeyed).SerializeToString()))  # no classroom key
    for room, events in (("room-a", in_order), ("room-b", shuffled), ("room-c", duplicated)):
        records += [(room.encode(), value) for value in chunks(events, 40)]
    rng.shuffle(records)  # rooms interleave; each room's own records keep their (shuffled) order

    worker = WorkerProcess(bootstrap, tmp_path / "data", f"it-{uuid.uuid4().hex[:8]}").start()
    metrics, dead = MetricsReader(bootstrap), DeadLetterReader(bootstrap)
    try:
        produce(bootstrap, EVENTS, records)
        lessons = ("lesson-a", "lesson-b", "lesson-c")
        metrics.poll_until(
            lambda: all(metrics.final(lesson) is not None for lesson in lessons),
            120,
            "final summaries",
            worker,
        )
        dead.poll_until(lambda: len(dead.letters()) >= 2, 30, "dead letters", worker)
        finals = [metrics.final(lesson) for lesson in lessons]
        assert comparable(finals[0]) == comparable(finals[1]) == comparable(finals[2])
        assert finals[0].st_samples == 20 and finals[0].teacher_id == "t-0042"

        def window_values(room: str) -> dict[tuple[int, str], float]:
            latest: dict[tuple[int, str], tuple[int, float]] = {}
            for n, batch in enumerate(metrics.batches()):
                for p in batch.points:
                    if p.classroom_id == room:
                        latest[(p.window_start.seconds, p.metric)] = (n, p.value)
            return {k: v for k, (_, v) in latest.items()}

        assert window_values("room-a") == window_values("room-b") == window_values("room-c")
        assert sum(v for (_, m), v in window_values("room-a").items() if m == "events") == len(in_order)

        letters = dead.letters()
        assert all(d.source == "worker" for d in letters)
        assert any("EventBatch" in d.error for d in letters)
        assert any("no key" in d.error for d in letters)
        devices = {d.device_id for b in metrics.batches() for d in b.devices if d.classroom_id == "room-a"}
        assert devices == {"app-1", "cam-1", "tab-1", "tab-2", "tab-3"}
    finally:
        metrics.close()
        dead.close()
        assert worker.stop() == 0, worker.output()[-3000:]
    # The start-up recovery sought to the committed offsets with the flow running: the seek shim ran.
    assert worker.seeks_with_flow_stopped() >= 1, worker.output()[-3000:]
