"""Supervision of the child processes of ``classtrace up``.

Each role (gateway, worker, …) runs as its own ``classtrace <role>`` process so that the roles do
not share one GIL, and so a crash of one loses nothing acknowledged: Kafka holds what the others
need. A child that exits while the stack runs is restarted with capped exponential backoff — a
Faust worker whose agent raised would otherwise hang or vanish silently (docs/FIELD-NOTES.md).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ChildSpec", "Supervisor", "classtrace_argv"]

logger = logging.getLogger(__name__)


def classtrace_argv(*args: str) -> list[str]:
    """The command line of ``classtrace ARGS`` run with this interpreter."""
    return [sys.executable, "-m", "classtrace.cli", *args]


@dataclass
class ChildSpec:
    """A role to keep running: its command line, extra environment and log file."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    restart: bool = True
    """False for run-to-completion children (the simulator): they are not restarted."""


HEALTHY_S = 60.0
"""A child that ran this long before exiting is restarted after the shortest delay again: the
backoff slows a crash loop, not a process that fails once in a while."""


@dataclass
class _Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    streak: int = 0
    """Restarts since the child last ran healthily: what the backoff grows with."""
    spawned_at: float = 0.0
    next_start: float = 0.0
    done: bool = False


class Supervisor:
    """Starts children, restarts the ones that die, stops them all on request."""

    def __init__(self, log_dir: Path, base_env: Mapping[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.base_env = dict(os.environ if base_env is None else base_env)
        self._children: list[_Child] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, spec: ChildSpec) -> None:
        """Start ``spec`` now and keep it running until :meth:`stop`."""
        child = _Child(spec)
        with self._lock:
            self._children.append(child)
            self._spawn(child)
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
            self._thread.start()

    def _spawn(self, child: _Child) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{child.spec.name}.log", "ab")  # noqa: SIM115 - child owns it
        env = {**self.base_env, **child.spec.env}
        child.proc = subprocess.Popen(
            list(child.spec.argv), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        child.spawned_at = time.monotonic()
        logger.info("started role=%s pid=%d", child.spec.name, child.proc.pid)

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            with self._lock:
                for child in self._children:
                    self._check(child)

    def _check(self, child: _Child) -> None:
        proc = child.proc
        if child.done or proc is None or proc.poll() is None:
            return
        if not child.spec.restart:
            child.done = True
            logger.info("role=%s finished code=%s", child.spec.name, proc.returncode)
            return
        now = time.monotonic()
        if child.next_start == 0.0:
            if now - child.spawned_at >= HEALTHY_S:
                child.streak = 0  # it ran fine: this is a new failure, not the same one again
            delay = min(30.0, 0.5 * 2**child.streak)
            child.next_start = now + delay
            logger.warning(
                "role=%s exited code=%s; restarting in %.1f s (see %s)",
                child.spec.name,
                proc.returncode,
                delay,
                self.log_dir / f"{child.spec.name}.log",
            )
        elif now >= child.next_start:
            child.restarts += 1
            child.streak += 1
            child.next_start = 0.0
            self._spawn(child)

    def pids(self) -> dict[str, int]:
        """Pids of the running children by role name."""
        with self._lock:
            return {c.spec.name: c.proc.pid for c in self._children if c.proc and c.proc.poll() is None}

    def restarts(self) -> dict[str, int]:
        """How often each role was restarted."""
        with self._lock:
            return {c.spec.name: c.restarts for c in self._children}

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every child, wait up to ``timeout``, then SIGKILL the rest."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            procs = [c.proc for c in self._children if c.proc is not None and c.proc.poll() is None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("pid=%d ignored SIGTERM; killing", proc.pid)
                proc.kill()
                proc.wait(5)
