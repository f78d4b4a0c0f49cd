"""The 10 s tumbling windows of the classroom time series (metric_points, docs/DESIGN.md §6/§7)."""

from __future__ import annotations

__all__ = ["WINDOW_MS", "hand_raising", "window_start"]

WINDOW_MS = 10_000


def window_start(occurred_ms: int) -> int:
    """Start (epoch ms) of the event-time window ``[start, start + 10 s)`` holding ``occurred_ms``."""
    return occurred_ms - occurred_ms % WINDOW_MS


def hand_raising(hands: int, frames: int) -> float | None:
    """The window's ``hand_raising`` point from its camera frames' total HAND_RAISING count: the
    mean per frame (raised hands per frame; a sum would count a hand once per frame it stays up).
    None without frames."""
    return hands / frames if frames else None
