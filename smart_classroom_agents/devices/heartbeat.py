"""Device heartbeats: every device reports its health every ``interval_s`` for the whole run.

Heartbeats keep coming between lessons (with an empty ``lesson_id``), which is what lets the
platform tell a quiet classroom from an offline one (docs/DESIGN.md §7 ``device_offline``). A
:class:`HeartbeatSchedule` is asked for one period at a time, so a long run never holds all its
heartbeats in memory.
"""

from __future__ import annotations

import bisect
import random

from smart_classroom_agents.devices.base import NORMAL, Device, Emission
from smart_classroom_agents.timetable import Lesson

__all__ = ["HEARTBEAT_INTERVAL_S", "HeartbeatSchedule"]

HEARTBEAT_INTERVAL_S = 60
FIRMWARE = "sim-2.4.1"
_INTERVAL_MS = HEARTBEAT_INTERVAL_S * 1000


class HeartbeatSchedule:
    """The heartbeats of one device at ``first_ms + k·interval``, tagged with the lesson running."""

    def __init__(
        self, device: Device, lessons: tuple[Lesson, ...], first_ms: int, rng: random.Random
    ) -> None:
        self.device = device
        self.lessons = lessons
        self._starts = [lesson.start_ms for lesson in lessons]
        self._first = first_ms + rng.randint(0, _INTERVAL_MS - 1)  # devices are not in phase
        self._rng = rng
        self._battery = rng.uniform(60.0, 100.0)

    def _lesson_at(self, at: int) -> str:
        i = bisect.bisect_right(self._starts, at) - 1
        if i >= 0 and self.lessons[i].start_ms <= at < self.lessons[i].end_ms:
            return self.lessons[i].lesson_id
        return ""

    def between(self, lo_ms: int, hi_ms: int) -> list[Emission]:
        """Heartbeats due in [lo_ms, hi_ms); call with consecutive periods, in order."""
        out: list[Emission] = []
        k = max(0, -(-(lo_ms - self._first) // _INTERVAL_MS))
        at = self._first + k * _INTERVAL_MS
        while at < hi_ms:
            event = self.device.event(self._lesson_at(at), at)
            hb = event.heartbeat
            self._battery = max(5.0, self._battery - self._rng.uniform(0.0, 0.2))
            hb.battery_pct = round(self._battery, 1)
            hb.cpu_pct = round(self._rng.uniform(5.0, 60.0), 1)
            hb.firmware = FIRMWARE
            hb.interval_s = HEARTBEAT_INTERVAL_S
            out.append(Emission(at, NORMAL, event))
            at += _INTERVAL_MS
        return out
