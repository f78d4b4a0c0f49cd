"""A worker killed with SIGKILL mid-lesson and restarted yields the same final summary as an
uninterrupted run: state comes back from the changelogs, re-delivered records are not recounted."""

from __future__ import annotations

import time
import uuid

import pytest

from classtrace.topics import EVENTS
from tests.helpers.lessons import chunks, recorded_lesson
from tests.helpers.worker_harness import MetricsReader, WorkerProcess, comparable, produce

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(240)]


def test_sigkill_mid_lesson_then_restart_gives_the_uninterrupted_summary(fresh_broker, tmp_path):
    bootstrap = fresh_broker.bootstrap
    app_id = f"fault-{uuid.uuid4().hex[:8]}"
    start_ms = (int(time.time()) - 900) * 1000  # one clock for every copy of the lesson
    reference = recorded_lesson(seed=21, start_ms=start_ms, classroom="room-ref", lesson="lesson-ref")
    victim_events = recorded_lesson(seed=21, start_ms=start_ms, classroom="room-kill", lesson="lesson-kill")
    victim = chunks(victim_events, 30)
    half = len(victim) // 2

    metrics = MetricsReader(bootstrap)
    worker = WorkerProcess(bootstrap, tmp_path / "data", app_id).start()
    try:
        produce(bootstrap, EVENTS, [(b"room-ref", v) for v in chunks(reference, 30)])
        produce(bootstrap, EVENTS, [(b"room-kill", v) for v in victim[:half]])
        metrics.poll_until(
            lambda: metrics.final("lesson-ref") is not None and metrics.summaries("lesson-kill"),
            120, "the reference final and a live summary of the victim", worker,
        )  # fmt: skip
        # more records the worker may process but not commit before it dies: they come again
        produce(bootstrap, EVENTS, [(b"room-kill", v) for v in victim[half : half + 2]])
        time.sleep(0.3)
        worker.kill()
        assert not any(s.final for s in metrics.summaries("lesson-kill"))

        produce(bootstrap, EVENTS, [(b"room-kill", v) for v in victim[half - 1 :]])  # overlap: duplicates
        worker = WorkerProcess(bootstrap, tmp_path / "data", app_id).start()
        metrics.poll_until(
            lambda: metrics.final("lesson-kill") is not None, 120, "the victim's final", worker
        )
        assert comparable(metrics.final("lesson-kill")) == comparable(metrics.final("lesson-ref"))
    finally:
        metrics.close()
        worker.stop()
