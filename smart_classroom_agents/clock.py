"""Simulated time: a lesson timetable replayed faster than (or as fast as) real time.

Event time must pass validation (docs/DESIGN.md §4: not more than 5 minutes in the future, not older
than 7 days), so a run faster than real time cannot start "now": it is anchored in the past such
that its *last* event lands about now. A backfill (speed 0) replays the whole span at once; speed 1
is a live classroom.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["MAX_SPAN_MS", "SimClock", "anchor_start_ms"]

MAX_SPAN_MS = 6 * 24 * 3600 * 1000
"""Longest timetable a run may replay: inside validation's 7-day horizon with a day to spare."""


def anchor_start_ms(now_ms: int, span_ms: int, speed: float) -> int:
    """Where simulated time starts so that no event is ever in the receiver's future.

    At real elapsed time r the simulated clock reads ``start + speed·r``; choosing
    ``start = now − span + span/speed`` makes the last event (at ``start + span``) fall at real time
    ``now + span/speed`` — exactly when it is emitted. For speed 0 (as fast as possible) the whole
    span lies in the past.
    """
    if span_ms > MAX_SPAN_MS:
        raise ValueError(f"a timetable of {span_ms / 86_400_000:.1f} days exceeds the 6-day replay limit")
    if speed <= 0:
        return now_ms - span_ms - 1000
    return now_ms - span_ms + int(span_ms / speed)


class SimClock:
    """Maps simulated epoch milliseconds to real waiting; speed 0 never waits.

    ``sleep`` and ``monotonic`` are injectable so tests run instantly.
    """

    def __init__(
        self,
        start_ms: int,
        speed: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.start_ms = start_ms
        self.speed = speed
        self._monotonic = monotonic
        self._sleep = sleep
        self._real_start = monotonic()

    def now_ms(self) -> int:
        """The simulated time now (for speed 0: unbounded, so every event is due)."""
        if self.speed <= 0:
            return 2**62
        return self.start_ms + int((self._monotonic() - self._real_start) * 1000 * self.speed)

    def wait_until(self, sim_ms: int) -> None:
        """Block until simulated time reaches ``sim_ms`` (returns at once when it has)."""
        if self.speed <= 0:
            return
        due = self._real_start + (sim_ms - self.start_ms) / 1000 / self.speed
        delay = due - self._monotonic()
        if delay > 0:
            self._sleep(delay)
