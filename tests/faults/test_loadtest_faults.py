"""``classtrace loadtest --faults``: gateway kills under load through a real ``classtrace up``.

Every acknowledged event lands exactly once and the lesson summaries equal an uninterrupted
replay of the same records (docs/FAULTS.md); the schedule and the refusals are checked alone.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from classtrace.errors import ClasstraceError
from loadtests.faults import FaultPlan, parse_kinds, schedule
from tests.fixtures.stack import running_stack  # noqa: F401  (fixture)

pytestmark = [pytest.mark.faults]


def test_schedule_fits_every_fault_inside_the_load_in_order_and_is_seeded():
    plan = FaultPlan(("gateway", "worker"), count=10, seed=7)
    times = schedule(plan, 90)
    assert len(times) == 20 and sorted(k for _, k in times) == ["gateway"] * 10 + ["worker"] * 10
    assert [t for t, _ in times] == sorted(t for t, _ in times)
    assert times[0][0] >= 9 and times[-1][0] <= 81
    assert schedule(plan, 90) == times != schedule(FaultPlan(plan.kinds, 10, seed=8), 90)


@pytest.mark.parametrize(
    ("kinds", "storage", "says"),
    [
        ("broker", "memory", "CLASSTRACE_BROKER_STORAGE=disk"),
        ("sink", "disk", "inside"),
        ("dns", "memory", "unknown"),
    ],
)
def test_faults_that_would_lose_events_by_design_are_refused(kinds, storage, says):
    with pytest.raises(ClasstraceError, match=says):
        parse_kinds(kinds, storage)
    assert parse_kinds("broker,pause", "disk") == ("broker", "pause")


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_gateway_killed_three_times_under_load_loses_and_doubles_nothing(running_stack, tmp_path):  # noqa: F811
    argv = [
        sys.executable, "-m", "classtrace.cli", "loadtest",
        "--users", "2", "--spawn-rate", "2", "--duration", "30", "--batch-size", "50",
        "--target", "gateway", "--faults", "gateway", "--fault-count", "3", "--fault-seed", "1",
        "--quiet", "--format", "json", "--out", str(tmp_path), "--data-dir", str(running_stack.data_dir),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=220, check=False)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["verdict"] == "PASS", done.stderr[-3000:]
    assert done.returncode == 0
    gateway = report["faults"]["by_kind"]["gateway"]
    assert gateway["injected"] == gateway["recovered"] == 3
    assert report["sent"] > 0 and report["lost"] == 0 and report["duplicated"] == 0
    assert report["landed"] >= report["accepted"]
    assert report["summaries"]["equal"] and report["summaries"]["lessons"] > 0
