"""device_offline (docs/DESIGN.md §7): a device whose last heartbeat is older than 3 × its interval_s."""

from __future__ import annotations

__all__ = ["OFFLINE_FACTOR", "is_offline"]

OFFLINE_FACTOR = 3


def is_offline(last_heartbeat_ms: int, interval_s: int, now_ms: int) -> bool:
    """True when ``now`` is strictly more than 3 × interval_s after the last heartbeat."""
    return now_ms - last_heartbeat_ms > OFFLINE_FACTOR * interval_s * 1000
