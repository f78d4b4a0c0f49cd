"""CPU time of the stack's processes over a load test: the per-process figures capacity is sized by.

A running ``classtrace up`` publishes its pid (runtime file); its processes are that pid and every
descendant — Tansu, the gateway, the Faust worker, a simulator — found by parent pid in Linux's
``/proc`` and named by role from their command line. Each one's user + system CPU time is read
when the load starts and again once the pipeline has drained; divided by the events landed, that
is CPU-µs per event per role, which docs/CAPACITY.md turns into cores per role. In the embedded
stack the ``up`` process itself runs the sink and the chDB engine (inserts and merges).

Without ``/proc`` (not Linux) or without a local stack (external Kafka and ClickHouse) there is
nothing to read and the report says so; the load test itself does not depend on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ROLES", "CpuSnapshot", "role_of", "snapshot", "usage"]

ROLES = ("up", "gateway", "worker", "sink", "dashboard", "simulate")
"""``classtrace`` subcommands whose processes are told apart (besides ``tansu``)."""

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def role_of(argv: list[str]) -> str:
    """The role of a process from its argv: ``tansu``, a classtrace subcommand, or ``other``."""
    if argv and "tansu" in Path(argv[0]).name:
        return "tansu"
    if any("classtrace" in arg for arg in argv[:3]):
        for arg in argv[1:]:
            if arg in ROLES:
                return arg
    return "other"


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds (user + system) of each process of a stack at one moment, by pid."""

    processes: dict[int, tuple[str, float]]
    """pid → (role, CPU seconds so far)."""


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process, or None when it is gone or unreadable."""
    try:
        fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def _argv(pid: int) -> list[str]:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def snapshot(root: int) -> CpuSnapshot | None:
    """CPU time of ``root`` and all its descendants; None without /proc or without ``root``."""
    if not _PROC.is_dir():
        return None
    stats: dict[int, tuple[int, float]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = found
    if root not in stats:
        return None
    family, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in stats.items() if ppid == parent and pid not in family]
        family.update(children)
        frontier.extend(children)
    processes = {pid: ("up" if pid == root else role_of(_argv(pid)), stats[pid][1]) for pid in family}
    return CpuSnapshot(processes)


def usage(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """CPU seconds each role used between two snapshots (a process started since counts from 0)."""
    used: dict[str, float] = {}
    for pid, (role, cpu) in after.processes.items():
        start = before.processes[pid][1] if pid in before.processes else 0.0
        used[role] = used.get(role, 0.0) + max(0.0, cpu - start)
    return used
