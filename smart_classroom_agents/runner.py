"""Runs a simulation: the timetable's classrooms, merged in emission order, paced by a SimClock.

Events are handed to an :class:`~smart_classroom_agents.outlets.Outlet` once per tick (half a
real second of simulated time, or every few thousand events when running as fast as possible),
and every event sent is added to the run's :class:`~smart_classroom_agents.ground_truth.GroundTruth`.
At the end (or on Ctrl-C, marked incomplete) ``<out>/ground_truth.json`` and ``<out>/run.json``
are written: the expectation the pipeline's ClickHouse contents are checked against.
"""

from __future__ import annotations

import heapq
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from classtrace.ids import school_pseudonym_key
from classtrace.v1 import events_pb2 as pb
from smart_classroom_agents.classroom import classroom_stream
from smart_classroom_agents.clock import SimClock, anchor_start_ms
from smart_classroom_agents.ground_truth import GroundTruth
from smart_classroom_agents.outlets import Outlet
from smart_classroom_agents.timetable import Classroom, build_timetable

__all__ = ["SimulationPlan", "SimulationResult", "plan_classrooms", "run_simulation"]

logger = logging.getLogger(__name__)

_FAST_BATCH = 5_000  # events per hand-off when not pacing: amortises spool transactions


@dataclass(frozen=True)
class SimulationPlan:
    """What to simulate. ``speed`` is simulated seconds per real second; 0 = as fast as possible."""

    classrooms: int
    lessons: int = 2
    seed: int = 0
    speed: float = 10.0
    lesson_minutes: float = 40.0
    break_minutes: float = 10.0
    shared_room_numbers: bool = False
    """Room ids repeat across schools (``room-01`` in each): the (school, classroom) identity."""

    def __post_init__(self) -> None:
        if self.classrooms < 1 or self.lessons < 1:
            raise ValueError("a simulation needs at least one classroom and one lesson")
        if 0 < self.speed < 1:
            raise ValueError(
                "speed must be 0 (as fast as possible) or ≥ 1: slow motion would put events in the future"
            )


@dataclass(frozen=True)
class SimulationResult:
    """What a run did and where its ground truth is."""

    run_tag: str
    out_dir: Path
    ground_truth: Path
    events: int
    lessons: int
    unsent: int
    complete: bool
    elapsed_s: float


def plan_classrooms(plan: SimulationPlan, now_ms: int) -> tuple[int, list[Classroom]]:
    """The run's anchor time and timetable, anchored so no event is ever in the future."""
    probe = build_timetable(
        plan.seed,
        plan.classrooms,
        plan.lessons,
        0,
        lesson_minutes=plan.lesson_minutes,
        break_minutes=plan.break_minutes,
        shared_room_numbers=plan.shared_room_numbers,
    )
    span = max(room.end_ms for room in probe) + 60_000
    start = anchor_start_ms(now_ms, span, plan.speed)
    rooms = build_timetable(
        plan.seed,
        plan.classrooms,
        plan.lessons,
        start,
        lesson_minutes=plan.lesson_minutes,
        break_minutes=plan.break_minutes,
        shared_room_numbers=plan.shared_room_numbers,
    )
    return start, rooms


def _merged(
    rooms: list[Classroom], seed: int, region_secret: bytes, salt: int
) -> Iterator[tuple[int, int, pb.Event]]:
    # Each classroom's devices hold only their school's key, as provisioned ones would.
    keys = {room.school_id: school_pseudonym_key(region_secret, room.school_id) for room in rooms}
    streams = [
        _indexed(i, classroom_stream(room, seed, keys[room.school_id], salt)) for i, room in enumerate(rooms)
    ]
    return heapq.merge(*streams, key=lambda item: item[0])


def _indexed(i: int, stream: Iterator[tuple[int, pb.Event]]) -> Iterator[tuple[int, int, pb.Event]]:
    """Tag one classroom's events with its index (a function, so each stream keeps its own ``i``:
    a generator expression here would read ``i`` late, and every event would go to the last room)."""
    for emit, event in stream:
        yield emit, i, event


def run_simulation(
    plan: SimulationPlan,
    outlet: Outlet,
    region_secret: bytes,
    out_root: Path,
    *,
    now_ms: int | None = None,
    quiet: bool = False,
    clock: SimClock | None = None,
) -> SimulationResult:
    """Run ``plan`` into ``outlet``; ground truth under ``out_root/<run tag>/``.

    Each school's devices pseudonymise with the key derived for it from ``region_secret``
    (docs/KEYS.md); ``outlet`` must hold the same secret (an :class:`EdgeOutlet` does).
    """
    began = time.monotonic()
    start, rooms = plan_classrooms(plan, int(time.time() * 1000) if now_ms is None else now_ms)
    tag = f"{start // 1000:x}"
    out_dir = out_root / tag
    out_dir.mkdir(parents=True, exist_ok=True)
    clock = clock or SimClock(start, plan.speed)
    truth = GroundTruth()
    end = max(room.end_ms for room in rooms) + 60_000
    tick_ms = max(1000, int(plan.speed * 500))
    pending: dict[int, list[pb.Event]] = {}
    complete = False
    progress = Progress(
        TextColumn("[bold]simulate[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}% · {task.fields[events]:,} events"),
        TimeElapsedColumn(),
        disable=quiet,
    )

    def hand_off() -> None:
        for i, events in pending.items():
            outlet.send(rooms[i], events)
        pending.clear()
        outlet.pump()

    try:
        with progress:
            task = progress.add_task(f"{len(rooms)} classrooms", total=end - start, events=0)
            tick_end = start + tick_ms
            waiting = 0
            for emit, i, event in _merged(rooms, plan.seed, region_secret, start):
                if emit >= tick_end or (plan.speed <= 0 and waiting >= _FAST_BATCH):
                    clock.wait_until(min(emit, tick_end))
                    hand_off()
                    waiting = 0
                    tick_end = max(tick_end + tick_ms, emit + 1)
                    progress.update(task, completed=emit - start, events=truth.total)
                pending.setdefault(i, []).append(event)
                truth.add(event)
                waiting += 1
            hand_off()
            progress.update(task, completed=end - start, events=truth.total)
        complete = True
    finally:
        unsent = outlet.close(timeout=60.0 if complete else 5.0)
        path = truth.write(out_dir / "ground_truth.json")
        result = SimulationResult(
            tag, out_dir, path, truth.total, len(truth.lessons()), unsent, complete, time.monotonic() - began
        )
        info = {"plan": asdict(plan), "start_ms": start, **asdict(result)}
        (out_dir / "run.json").write_text(json.dumps(info, indent=1, default=str))
        logger.info(
            "simulation done run=%s events=%d lessons=%d unsent=%d complete=%s",
            tag,
            result.events,
            result.lessons,
            unsent,
            complete,
        )
    return result
