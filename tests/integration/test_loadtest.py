"""The load-test runner at small scale against a real stack: Locust runs, everything reconciles."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fixtures.stack import running_stack  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("target", ["gateway", "kafka"])
def test_small_loadtest_reconciles(running_stack, target, tmp_path):  # noqa: F811
    argv = [
        sys.executable, "-m", "classtrace.cli", "loadtest",
        "--users", "2", "--spawn-rate", "2", "--duration", "4",
        "--target", target, "--quiet", "--format", "json", "--out", str(tmp_path),
        "--data-dir", str(running_stack.data_dir),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["verdict"] == "PASS"
    assert report["sent"] > 0 and report["lost"] == 0 and report["duplicated"] == 0
    assert report["landed"] == report["accepted"] == report["sent"] - report["rejected"]
    cpu = report["cpu"]  # the stack's processes, by role, for the capacity note
    assert cpu["stack_measured"]
    assert {"up", "tansu", "gateway", "worker", "locust"} <= set(cpu["us_per_event"])
    assert all(us >= 0 for us in cpu["us_per_event"].values()) and cpu["total_us_per_event"] > 0
    html = (tmp_path / f"loadtest-{report['run']}.html").read_text()
    assert "<svg" in html and "压测报告" in html
