"""The 10 s tumbling windows of the classroom time series (metric_points, DESIGN §6/§7)."""

from __future__ import annotations

__all__ = ["WINDOW_MS", "window_start"]

WINDOW_MS = 10_000


def window_start(occurred_ms: int) -> int:
    """Start (epoch ms) of the event-time window ``[start, start + 10 s)`` holding ``occurred_ms``."""
    return occurred_ms - occurred_ms % WINDOW_MS
