"""When a lesson's summary goes out: at once when it becomes final, else at most once per interval.

Computing a summary (S-T codes, fsum of the attention histogram, a deterministic serialisation
for the fingerprint) costs as much as counting hundreds of events, so a lesson changed while
its throttle is closed is only *marked* pending; the summary is computed when it may actually be
sent (the throttle opened, or the lesson became final). What goes out is the same as computing
it every time and holding back the too-early ones: a summary equal to the last one sent is never
re-sent, a changed one is sent as soon as the throttle allows, a final one at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from classtrace.codec import set_ts_now
from classtrace.v1 import pipeline_pb2 as ppb
from stream_processors.lesson_state import LessonState, summary_fingerprint

__all__ = ["SummaryThrottle", "summary_sink"]

Out: TypeAlias = Callable[[ppb.LessonSummary], None]


class SummaryThrottle:
    """The last summary sent per lesson and the lessons whose changed summary waits."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.pending: set[str] = set()
        # lesson key → (fingerprint, final, wall time sent, version) of the last summary sent
        self._sent: dict[str, tuple[bytes, bool, float, int]] = {}

    def changed(self, key: str, lesson: LessonState, now: float, out: Out) -> bool:
        """The lesson counted new events: send its summary now or mark it pending; True if sent."""
        last = self._sent.get(key)
        if last is not None and now - last[2] < self.interval_s and not (lesson.final and not last[1]):
            self.pending.add(key)  # too soon and not becoming final: decide when the throttle opens
            return False
        return self.send(key, lesson, now, out)

    def forget(self, key: str) -> None:
        """Drop what is kept for an evicted lesson (its later events are dropped, docs/DESIGN.md §10)."""
        self.pending.discard(key)
        self._sent.pop(key, None)

    def due(self, key: str, now: float) -> bool:
        """Whether the pending ``key``'s throttle is open at ``now``."""
        last = self._sent.get(key)
        return last is None or now - last[2] >= self.interval_s

    def send(self, key: str, lesson: LessonState, now: float, out: Out) -> bool:
        """Send the lesson's summary unless it equals the last one sent; True if sent."""
        self.pending.discard(key)
        summary = lesson.summary()
        if summary is None:
            return False
        fingerprint = summary_fingerprint(summary)
        last = self._sent.get(key)
        if last is not None and last[0] == fingerprint:
            return False
        # version: wall-clock µs, strictly increasing per lesson, so it also increases across
        # restarts (ClickHouse keeps the row with the highest version).
        version = max(int(now * 1_000_000), (last[3] + 1) if last else 0)
        summary.version = version
        set_ts_now(summary.computed_at, int(now * 1e9))
        out(summary)
        self._sent[key] = (fingerprint, summary.final, now, version)
        return True


def summary_sink(batch_of: Callable[[str], ppb.MetricBatch], classroom: str) -> Out:
    """Where a summary of ``classroom`` goes: its MetricBatch, created only if one is sent."""

    def out(summary: ppb.LessonSummary) -> None:
        batch_of(classroom).summaries.append(summary)

    return out
