"""kill -9 of a device mid-send, then restart: every event arrives (by event_id), seq continues."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys

import pytest

from tests.helpers.ingest_helpers import make_topics, read_events

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def child(mode: str, kafka, topic: str, spool, count: int) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.faults.sdk_child", mode, kafka.bootstrap, topic]
    return subprocess.Popen(
        [*argv, str(spool), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=os.getcwd(),
    )


def test_killed_mid_send_then_restarted_delivers_everything(kafka, tmp_path):
    topic = make_topics(kafka.bootstrap).events
    spool = tmp_path / "edge.spool"
    first = child("produce", kafka, topic, spool, 2000)
    assert first.stdout is not None
    lines = []
    for line in first.stdout:
        lines.append(line.split())
        if lines[-1][0] == "delivered" and int(lines[-1][1]) >= 300:
            first.send_signal(signal.SIGKILL)
            break
    first.wait(30)
    assert first.returncode == -signal.SIGKILL
    assert ["done"] not in lines  # it really died mid-send
    delivered_before = int(lines[-1][1])
    assert delivered_before < 2000

    second = child("resume", kafka, topic, spool, 100)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0 and out.split()[-1] == "done"

    expected = set(spool.with_name("edge.spool.ids").read_text().split())
    assert len(expected) == 2100
    got = read_events(kafka.bootstrap, topic)
    ids = [e.event_id for e in got]
    assert set(ids) == expected  # nothing lost
    # At-least-once: only a drain acknowledged by Kafka but not yet deleted at the kill comes again.
    assert len(ids) - len(expected) <= 100
    seqs = collections.defaultdict(set)
    for e in got:
        seqs[e.device_id].add(e.seq)
    assert seqs == {"tab-0": set(range(1, 1051)), "tab-1": set(range(1, 1051))}  # continued, no reuse
