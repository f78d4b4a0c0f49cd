"""kill -9 between insert and commit, and ClickHouse outages: exactly N distinct rows, no loss.

The crash runs the sink in a child process on its own chDB directory (chDB allows one engine per
process, and the test process holds the session's): the child is killed with SIGKILL from inside
the ``after_insert`` hook, i.e. after its batch landed and before the offsets were committed.
A second child resumes from the committed offsets and reports the counts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from classtrace.errors import StoreError
from sinks.batcher import BatchPolicy, SinkTopics
from sinks.service import SinkHooks, SinkService
from tests.helpers.kafka_io import produce, wait_for
from tests.helpers.sinkdata import event_batches

pytestmark = [pytest.mark.faults, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


def _child(argv: list[str]) -> None:
    """``mode chdb_dir bootstrap events_topic group expected``: run the sink in this process."""
    from classtrace.clickhouse import connect
    from classtrace.migrate import apply_migrations

    mode, chdb_dir, bootstrap, events_topic, group, expected = argv
    client = connect(f"chdb://{chdb_dir}", database="classtrace")
    apply_migrations(client, "classtrace")
    batches = 0

    def crash(batch):
        nonlocal batches
        batches += 1
        if mode == "crash" and batches == 2:
            print(json.dumps({"crashing_after_insert_of": batch.records}), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    topics = SinkTopics(events=events_topic, metrics=events_topic + ".m", deadletter=events_topic + ".d")
    sink = SinkService(
        client,
        bootstrap,
        {},
        group=group,
        topics=topics,
        policy=BatchPolicy(max_rows=1_500, max_wait=0.2),
        hooks=SinkHooks(after_insert=crash),
    )
    sink.start()
    deadline = time.monotonic() + 90
    final = 0
    while time.monotonic() < deadline:
        final = int(client.command("SELECT count() FROM classtrace.events FINAL"))
        if mode == "resume" and final >= int(expected):
            time.sleep(1.0)  # anything more (there must not be) would land now
            break
        time.sleep(0.2)
    sink.stop()
    raw = int(client.command("SELECT count() FROM classtrace.events"))
    final = int(client.command("SELECT count() FROM classtrace.events FINAL"))
    distinct = int(client.command("SELECT uniqExact(event_id) FROM classtrace.events"))
    print(json.dumps({"raw": raw, "final": final, "distinct": distinct}), flush=True)


def run_child(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.faults.test_sink_crash", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_kill9_between_insert_and_commit_keeps_exactly_n(kafka, topic_factory, group_id, tmp_path):
    events_topic = topic_factory(partitions=2, prefix="crash")
    topic_factory(partitions=1, prefix="unused")  # metrics/deadletter are not read here
    for suffix in (".m", ".d"):
        from classtrace.kafka import ensure_topics
        from classtrace.topics import TopicSpec

        ensure_topics(kafka.bootstrap, 1, topics=[TopicSpec(events_topic + suffix)])
    n = 6_000
    records = [(events_topic, k.encode(), b.SerializeToString()) for k, b in event_batches(n, per_batch=100)]
    produce(kafka.bootstrap, records + records[:15])  # producer retries: duplicates on the topic
    chdb_dir = str(tmp_path / "chdb")

    crashed = run_child("crash", chdb_dir, kafka.bootstrap, events_topic, group_id, str(n))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert "crashing_after_insert_of" in crashed.stdout

    resumed = run_child("resume", chdb_dir, kafka.bootstrap, events_topic, group_id, str(n))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    counts = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert counts["final"] == n
    assert counts["distinct"] == n
    assert counts["raw"] >= n  # duplicates may sit unmerged; FINAL collapses them


class FlakyClient:
    """A real client whose inserts fail like an unreachable server while ``down`` is set."""

    def __init__(self, client):
        self.client = client
        self.down = threading.Event()
        self.failed = 0

    def insert(self, *args, **kwargs):
        if self.down.is_set():
            self.failed += 1
            raise StoreError("insert: connection refused (ClickHouse down)", None)
        return self.client.insert(*args, **kwargs)

    def command(self, *args, **kwargs):
        return self.client.command(*args, **kwargs)


def test_clickhouse_outage_backs_off_without_commit_or_loss(ch_db, kafka, topic_factory, group_id):
    topics = SinkTopics(
        events=topic_factory(partitions=2, prefix="out"),
        metrics=topic_factory(prefix="outm"),
        deadletter=topic_factory(prefix="outd"),
    )
    flaky = FlakyClient(ch_db.client)
    flaky.down.set()
    sink = SinkService(
        flaky,
        kafka.bootstrap,
        {},
        database=ch_db.database,
        group=group_id,
        topics=topics,
        policy=BatchPolicy(max_rows=500, max_wait=0.2),
    )
    sink.start()
    try:
        produce(
            kafka.bootstrap,
            [(topics.events, k.encode(), b.SerializeToString()) for k, b in event_batches(3_000)],
        )
        wait_for(lambda: flaky.failed >= 3, what="retries while down")
        time.sleep(2)
        assert ch_db.count("events") == 0
        assert sink.alive()
        assert not sink._state.committed  # nothing committed while nothing landed
        flaky.down.clear()
        wait_for(lambda: ch_db.count("events", final=True) >= 3_000, what="all events after recovery")
        assert sink.alive()
    finally:
        sink.stop()
    assert ch_db.count("events", final=True) == 3_000


if __name__ == "__main__":
    _child(sys.argv[1:])
