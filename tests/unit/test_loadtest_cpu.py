"""Per-role CPU accounting of a load test: roles told apart, new processes counted from zero."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from loadtests.cpu import CpuSnapshot, role_of, snapshot, usage
from loadtests.report import render_html


@pytest.mark.parametrize(
    ("argv", "role"),
    [
        (["/root/.calfkit/bin/tansu", "broker", "--listener-url", "tcp://127.0.0.1:1"], "tansu"),
        (["/venv/bin/python", "/venv/bin/classtrace", "worker", "--app-id", "x"], "worker"),
        (["/venv/bin/python", "-m", "classtrace.cli", "gateway", "--port", "1"], "gateway"),
        (["/venv/bin/python", "-m", "classtrace.cli", "simulate", "--classrooms", "3"], "simulate"),
        (["/usr/bin/python3", "something_else.py", "worker"], "other"),
        ([], "other"),
    ],
)
def test_roles_come_from_the_command_line(argv, role):
    assert role_of(argv) == role


def test_usage_adds_up_by_role_and_counts_new_processes_from_zero():
    before = CpuSnapshot({1: ("up", 10.0), 2: ("worker", 5.0), 3: ("gateway", 1.0)})
    after = CpuSnapshot({1: ("up", 12.5), 2: ("worker", 9.0), 4: ("worker", 0.5), 5: ("tansu", 2.0)})
    assert usage(before, after) == {"up": 2.5, "worker": 4.5, "tansu": 2.0}


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="Linux /proc")
def test_a_snapshot_finds_a_process_tree_and_its_cpu():
    child = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"])
    try:
        found = snapshot(os.getpid())
        assert found is not None
        assert found.processes[os.getpid()][0] == "up"  # the root is named as the stack's owner
        assert child.pid in found.processes
        assert found.processes[os.getpid()][1] > 0
    finally:
        child.kill()
        child.wait()
    assert snapshot(2**22 + 12345) is None  # no such process


def test_the_report_page_shows_cpu_per_role():
    cpu = {
        "window_s": 60.0,
        "stack_measured": True,
        "cpu_s": {"worker": 30.0, "locust": 10.0},
        "us_per_event": {"worker": 15.0, "locust": 5.0},
        "total_us_per_event": 20.0,
    }
    page = render_html({"run": "r1", "cpu": cpu})
    assert "CPU per event (µs)" in page and "<td>worker</td><td>30.0</td><td>15.0</td>" in page
    assert "CPU per event" not in render_html({"run": "r2"})
