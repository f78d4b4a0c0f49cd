"""Run ``classtrace worker`` as a subprocess against a test broker, and read what it emits.

The worker runs in its own process with its own timeout: a Faust worker can hang rather than
exit (docs/FIELD-NOTES.md), and a test must be able to SIGKILL it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from classtrace.kafka import Consumer, TopicPartition, make_admin, make_producer
from classtrace.topics import DEADLETTER, METRICS
from classtrace.v1 import pipeline_pb2 as ppb


class WorkerProcess:
    """``python -m classtrace.cli worker`` with the env `classtrace up` gives it."""

    def __init__(self, bootstrap: str, data_dir: Path, app_id: str, partitions: int = 2) -> None:
        self.bootstrap, self.data_dir, self.app_id, self.partitions = bootstrap, data_dir, app_id, partitions
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / f"worker-{uuid.uuid4().hex[:6]}.log"

    def start(self) -> WorkerProcess:
        env = {
            **os.environ,
            "CLASSTRACE_KAFKA_BOOTSTRAP": self.bootstrap,
            "CLASSTRACE_DATA_DIR": str(self.data_dir),
            "CLASSTRACE_PARTITIONS": str(self.partitions),
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "classtrace.cli", "worker", "--app-id", self.app_id],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def seeks_with_flow_stopped(self) -> int:
        """How often the worker's Faust shim (stream_processors.delivery) found the flow running at
        a seek and stopped it, as its last log line of the shim says (0: never)."""
        found = re.findall(r"seek_shim calls=\d+ flow_stopped=(\d+)", self.output())
        return int(found[-1]) if found else 0

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"worker did not stop on SIGTERM:\n{self.output()[-3000:]}") from None
        return self.proc.returncode


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = make_producer(bootstrap)
    for key, value in records:
        producer.produce(topic, key=key, value=value)
        producer.poll(0)
    assert producer.flush(30) == 0


class TopicReader:
    """Reads a topic from the beginning (all partitions, no group) and keeps everything read."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        parts = make_admin(bootstrap).list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False,
             "fetch.queue.backoff.ms": 10}
        )  # fmt: skip
        self.consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        self.values: list[tuple[bytes | None, bytes]] = []

    def poll_until(self, done: Callable[[], bool], timeout: float, what: str, worker: WorkerProcess) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; worker log:\n{worker.output()[-4000:]}")
            if worker.proc is not None and worker.proc.poll() is not None:
                raise AssertionError(f"worker exited ({worker.proc.returncode}):\n{worker.output()[-4000:]}")
            for msg in self.consumer.consume(1000, 0.2):
                if msg.error() is None:
                    self.values.append((msg.key(), msg.value()))

    def close(self) -> None:
        self.consumer.close()


class MetricsReader(TopicReader):
    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap, METRICS)

    def batches(self) -> list[ppb.MetricBatch]:
        return [ppb.MetricBatch.FromString(v) for _, v in self.values]

    def summaries(self, lesson_id: str) -> list[ppb.LessonSummary]:
        return [s for b in self.batches() for s in b.summaries if s.lesson_id == lesson_id]

    def final(self, lesson_id: str) -> ppb.LessonSummary | None:
        found = self.summaries(lesson_id)
        if not found:
            return None
        latest = max(found, key=lambda s: s.version)
        return latest if latest.final else None


class DeadLetterReader(TopicReader):
    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap, DEADLETTER)

    def letters(self) -> list[ppb.DeadLetter]:
        return [ppb.DeadLetter.FromString(v) for _, v in self.values]


def comparable(summary: ppb.LessonSummary) -> bytes:
    """A summary without what differs between runs and rooms: ids, computed_at, version."""
    copy = ppb.LessonSummary()
    copy.CopyFrom(summary)
    for name in ("computed_at", "version", "lesson_id", "classroom_id"):
        copy.ClearField(name)
    return copy.SerializeToString(deterministic=True)
