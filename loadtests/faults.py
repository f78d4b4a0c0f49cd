"""Faults injected into a running ``classtrace up`` while a load test runs (``--faults``).

Kinds, each aimed at one process of the stack, found as a descendant of the ``up`` pid by its
command line (the supervisor publishes no pids; :mod:`loadtests.cpu` tells roles apart):

* ``gateway`` / ``worker``: ``kill -9`` of the supervised child; recovered once the supervisor has
  started a new one and it works again (the gateway answers ``/healthz``; the worker's consumer
  group commits past where it stood at the kill).
* ``pause``: ``SIGSTOP`` of Tansu for a few seconds, then ``SIGCONT``: the gateway cannot publish,
  its requests wait (librdkafka retries for 15 s) or fail with 503, and the load users retry the
  same batch as an edge device's spool does. Recovered once events land again.
* ``broker``: ``kill -9`` of Tansu; only with ``CLASSTRACE_BROKER_STORAGE=disk``, whose log ``up``
  restarts the broker over. The default log is in memory: a killed broker takes acknowledged
  events with it by design (docs/FIELD-NOTES.md), so the kind is refused there.

``sink`` is not a kind: the sink runs inside the ``up`` process itself (next to the chDB engine),
and killing it is killing the stack; tests/faults/test_sink_crash.py covers its crash instead.

The schedule is seeded: N faults per kind spread evenly over the load (first and last tenth
kept clear), each jittered within its slot. A fault waits until the previous one recovered, so
a slow restart delays the rest instead of stacking faults; one that no longer fits before the
load ends is recorded as skipped.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from classtrace.errors import ClasstraceError
from loadtests import cpu

__all__ = ["KINDS", "FaultPlan", "FaultRecord", "Injector", "StackProbe", "parse_kinds", "schedule"]

logger = logging.getLogger(__name__)

KINDS = ("gateway", "worker", "pause", "broker")
_PROCESS = {"gateway": "gateway", "worker": "worker", "pause": "tansu", "broker": "tansu"}
RECOVERY_TIMEOUT_S = 90.0


def parse_kinds(text: str, broker_storage: str) -> tuple[str, ...]:
    """``gateway,worker`` → the kinds; refuses what cannot be injected without a false FAIL."""
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    for kind in kinds:
        if kind == "sink":
            raise ClasstraceError(
                "--faults sink is not supported: the sink runs inside the `classtrace up` process "
                "(next to the chDB engine), so killing it kills the stack; "
                "see tests/faults/test_sink_crash.py"
            )
        if kind not in KINDS:
            raise ClasstraceError(f"unknown fault kind {kind!r}; choose from {', '.join(KINDS)}")
        if kind == "broker" and broker_storage != "disk":
            raise ClasstraceError(
                "--faults broker needs CLASSTRACE_BROKER_STORAGE=disk (set for both `up` and the load "
                "test): the default broker keeps its log in memory, so a kill loses acknowledged events "
                "by design and `up` stops (docs/FIELD-NOTES.md)"
            )
    if not kinds:
        raise ClasstraceError("--faults needs at least one kind")
    return kinds


@dataclass(frozen=True)
class FaultPlan:
    """Which faults, how many of each, the seed of their times, how long a pause lasts."""

    kinds: tuple[str, ...]
    count: int = 10
    seed: int = 0
    pause_s: float = 5.0


def schedule(plan: FaultPlan, duration_s: float) -> list[tuple[float, str]]:
    """(seconds after load start, kind) for every fault, in time order; seeded."""
    rng = random.Random(plan.seed)
    kinds = [k for _ in range(plan.count) for k in plan.kinds]
    rng.shuffle(kinds)
    margin = duration_s / 10
    slot = (duration_s - 2 * margin) / max(1, len(kinds))
    return [(margin + (i + 0.5 + rng.uniform(-0.35, 0.35)) * slot, k) for i, k in enumerate(kinds)]


@dataclass
class FaultRecord:
    """One fault as injected: when, on which pid, and how long the stack took to recover."""

    kind: str
    planned_s: float
    at_s: float | None = None
    pid: int | None = None
    new_pid: int | None = None
    recovered_s: float | None = None
    """Seconds from the fault to recovery; None when it did not recover in time."""
    skipped: str = ""


@dataclass
class StackProbe:
    """How the injector sees the stack: its root pid, gateway, landed count and worker progress."""

    root_pid: int
    gateway_url: str
    landed: Callable[[], int]
    worker_committed: Callable[[], int] = field(default=lambda: 0)

    def pid_of(self, process: str) -> int | None:
        """The pid of the stack's ``process`` (role or ``tansu``), None while there is none."""
        snap = cpu.snapshot(self.root_pid)
        if snap is None:
            return None
        found = [pid for pid, (role, _) in snap.processes.items() if role == process]
        return max(found) if found else None

    def gateway_ok(self) -> bool:
        try:
            return httpx.get(self.gateway_url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


class Injector(threading.Thread):
    """Injects the scheduled faults while the load runs; ``records`` says what happened."""

    def __init__(self, plan: FaultPlan, probe: StackProbe, duration_s: float, t0: float) -> None:
        super().__init__(name="fault-injector", daemon=True)
        self.plan, self.probe, self.t0 = plan, probe, t0
        self.load_end = t0 + duration_s
        self.records = [FaultRecord(kind, at) for at, kind in schedule(plan, duration_s)]
        self.stop = threading.Event()

    def run(self) -> None:
        for record in self.records:
            wait = self.t0 + record.planned_s - time.time()
            if wait > 0 and self.stop.wait(wait):
                record.skipped = "load test stopped"
                continue
            if time.time() > self.load_end - 2:
                record.skipped = "no time left before the load ended (earlier recoveries were slow)"
                continue
            try:
                self._inject(record)
            except Exception as exc:  # one failed injection is reported, the run goes on
                logger.warning("fault %s failed: %s", record.kind, exc)
                record.skipped = f"injection failed: {exc}"

    def _inject(self, record: FaultRecord) -> None:
        process = _PROCESS[record.kind]
        pid = self.probe.pid_of(process)
        if pid is None:
            record.skipped = f"no {process} process found"
            return
        committed, started = self.probe.worker_committed(), time.time()
        record.pid, record.at_s = pid, started - self.t0
        if record.kind == "pause":
            os.kill(pid, signal.SIGSTOP)
            try:
                time.sleep(self.plan.pause_s)
            finally:
                os.kill(pid, signal.SIGCONT)
        else:
            os.kill(pid, signal.SIGKILL)
        logger.info("fault %s pid=%d at %.1f s", record.kind, pid, record.at_s)
        self._await_recovery(record, process, committed, started)

    def _await_recovery(self, record: FaultRecord, process: str, committed: int, started: float) -> None:
        landed = self.probe.landed()
        deadline = started + RECOVERY_TIMEOUT_S
        while time.time() < deadline:
            new = record.pid if record.kind == "pause" else self.probe.pid_of(process)
            if (
                new is not None
                and (record.kind == "pause" or new != record.pid)
                and self._works(record, committed, landed)
            ):
                record.new_pid, record.recovered_s = new, time.time() - started
                return
            time.sleep(0.2)

    def _works(self, record: FaultRecord, committed: int, landed: int) -> bool:
        if record.kind == "gateway":
            return self.probe.gateway_ok()
        if record.kind == "worker":
            return self.probe.worker_committed() > committed
        return self.probe.landed() > landed

    def summary(self) -> dict[str, Any]:
        """The faults for the report: each one, and per kind how many and the slowest recovery."""
        kinds: dict[str, dict[str, Any]] = {}
        for r in self.records:
            entry = kinds.setdefault(
                r.kind, {"planned": 0, "injected": 0, "recovered": 0, "max_recovery_s": 0.0}
            )
            entry["planned"] += 1
            if r.at_s is not None:
                entry["injected"] += 1
            if r.recovered_s is not None:
                entry["recovered"] += 1
                entry["max_recovery_s"] = max(entry["max_recovery_s"], r.recovered_s)
        return {"plan": asdict(self.plan), "by_kind": kinds, "faults": [asdict(r) for r in self.records]}
