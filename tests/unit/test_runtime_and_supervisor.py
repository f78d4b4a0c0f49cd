"""`classtrace up` is found through its runtime file, and its supervisor restarts dead roles."""

from __future__ import annotations

import os
import sys
import time

import pytest

from classtrace.runtime import Runtime, clear_runtime, read_runtime, write_runtime
from classtrace.supervisor import ChildSpec, Supervisor


def test_runtime_file_round_trips_and_is_private(tmp_path):
    runtime = Runtime(pid=os.getpid(), kafka_bootstrap="127.0.0.1:1234", gateway_url="http://x")
    path = write_runtime(tmp_path, runtime)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert read_runtime(tmp_path) == runtime
    clear_runtime(tmp_path, pid=os.getpid())
    assert read_runtime(tmp_path) is None


def test_stale_runtime_file_of_a_dead_process_is_ignored(tmp_path):
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    write_runtime(tmp_path, Runtime(pid=proc.pid, kafka_bootstrap="127.0.0.1:1"))
    assert read_runtime(tmp_path) is None


def test_clear_leaves_another_stacks_file(tmp_path):
    write_runtime(tmp_path, Runtime(pid=os.getpid(), kafka_bootstrap="a:1"))
    clear_runtime(tmp_path, pid=os.getpid() + 1)
    assert read_runtime(tmp_path) is not None


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_supervisor_restarts_a_role_that_dies_and_stops_all(tmp_path):
    supervisor = Supervisor(tmp_path / "logs")
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    supervisor.add(ChildSpec("sleeper", sleeper))
    supervisor.add(ChildSpec("oneshot", [sys.executable, "-c", "print('done')"], restart=False))
    first = supervisor.pids()["sleeper"]
    os.kill(first, 9)
    assert _wait(lambda: supervisor.pids().get("sleeper") not in (None, first))
    assert supervisor.restarts()["sleeper"] == 1
    assert supervisor.restarts()["oneshot"] == 0
    supervisor.stop(timeout=5)
    assert supervisor.pids() == {}
    assert (tmp_path / "logs" / "oneshot.log").read_text().strip() == "done"


@pytest.mark.parametrize(("healthy_s", "streak"), [(0.2, 1), (1000.0, 2)])
def test_backoff_grows_only_while_a_role_keeps_failing(tmp_path, monkeypatch, healthy_s, streak):
    """Restarts of a role that ran healthily in between start from the shortest delay again."""
    import classtrace.supervisor as supervisor_module

    monkeypatch.setattr(supervisor_module, "HEALTHY_S", healthy_s)
    supervisor = Supervisor(tmp_path / "logs")
    supervisor.add(ChildSpec("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"]))
    try:
        for _ in range(2):
            pid = supervisor.pids()["sleeper"]
            time.sleep(0.3)  # longer than the short "healthy" run, far shorter than the long one
            os.kill(pid, 9)
            assert _wait(lambda pid=pid: supervisor.pids().get("sleeper") not in (None, pid))
        assert supervisor.restarts()["sleeper"] == 2
        assert supervisor._children[0].streak == streak
    finally:
        supervisor.stop(timeout=5)
