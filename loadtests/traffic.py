"""Realistic classroom traffic for load tests, stamped with fresh event ids at almost no cost.

A load generator on the same two cores as the stack must not spend them building protobufs. So
each load device takes a few hundred events from a simulated lesson (the simulator's realistic
mix of observations, traces, teaching segments, heartbeats), rebinds them to its own ids, and
serialises them once as ``EventBatch`` fragments. A request then copies the bytes and overwrites
only the last 12 hex digits of each event_id with a counter: ids stay valid UUIDs, unique per
run (``<run>-<device>-4000-8000-<counter>``), and the reconciler can tell this run's rows apart by
``school_id``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from classtrace.v1 import events_pb2 as pb
from smart_classroom_agents.classroom import classroom_stream
from smart_classroom_agents.runner import SimulationPlan, plan_classrooms

__all__ = ["BatchFactory", "LoadDevice", "load_devices", "template_events"]

_COUNTER_DIGITS = 12
_PLACEHOLDER = "0" * _COUNTER_DIGITS


@dataclass(frozen=True)
class LoadDevice:
    """One load-generating device: a classroom of its own, bound to one gateway token."""

    index: int
    school_id: str
    classroom_id: str
    device_id: str
    id_prefix: str
    """First 24 characters of every event_id it sends (``run8-dev4-4000-8000-``)."""


def load_devices(run: str, count: int) -> list[LoadDevice]:
    """``count`` devices of school ``lt-<run>``; ``run`` is 8 hex digits."""
    school = f"lt-{run}"
    return [
        LoadDevice(i, school, f"{school}-c{i:04d}", f"{school}-c{i:04d}-sim", f"{run}-{i:04x}-4000-8000-")
        for i in range(count)
    ]


def template_events(n: int = 400, seed: int = 0, now_ms: int | None = None) -> list[pb.Event]:
    """``n`` events of one simulated classroom's lesson, in emission order (the realistic mix)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    plan = SimulationPlan(classrooms=1, lessons=1, seed=seed, speed=0, lesson_minutes=15, break_minutes=0)
    start, rooms = plan_classrooms(plan, now)
    events = [ev for _, ev in classroom_stream(rooms[0], seed, b"loadtest", start) if ev.lesson_id]
    return events[:n]


class BatchFactory:
    """EventBatch bytes of ``batch_size`` events of one device, a fresh id for each event."""

    def __init__(self, device: LoadDevice, templates: list[pb.Event], batch_size: int = 100) -> None:
        self.device = device
        self.batch_size = batch_size
        self.counter = 0
        lesson_id = f"{device.classroom_id}-L1"
        self._fragments: list[tuple[bytes, int]] = []
        for template in templates:
            event = pb.Event()
            event.CopyFrom(template)
            event.event_id = device.id_prefix + _PLACEHOLDER
            event.school_id, event.classroom_id, event.device_id = (
                device.school_id,
                device.classroom_id,
                device.device_id,
            )
            event.device_kind = pb.DEVICE_KIND_GATEWAY_SIM
            event.lesson_id = lesson_id
            event.seq = 0
            body = event.SerializeToString()
            # Field 1 (event_id) is serialised first: tag, length 36, then the id's 36 bytes.
            assert body[:2] == b"\x0a\x24", "event_id must be the first field"
            wrapper = pb.EventBatch()
            wrapper.events.append(event)
            fragment = wrapper.SerializeToString()
            self._fragments.append((fragment, len(fragment) - len(body) + 2 + 36 - _COUNTER_DIGITS))
        self._next = 0

    def next_batch(self) -> tuple[bytes, int]:
        """(EventBatch bytes, events in it); ids continue the device's counter."""
        parts = bytearray()
        offsets: list[int] = []
        n = len(self._fragments)
        for k in range(self.batch_size):
            fragment, id_at = self._fragments[(self._next + k) % n]
            offsets.append(len(parts) + id_at)
            parts += fragment
        self._next = (self._next + self.batch_size) % n
        for at in offsets:
            self.counter += 1
            parts[at : at + _COUNTER_DIGITS] = b"%012x" % self.counter
        return bytes(parts), self.batch_size
