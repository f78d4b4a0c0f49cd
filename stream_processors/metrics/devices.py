"""device_offline (docs/DESIGN.md §7): a device whose last heartbeat is older than 3 × its interval_s."""

from __future__ import annotations

__all__ = ["OFFLINE_FACTOR", "is_offline", "offline_at", "silence_limit_s"]

OFFLINE_FACTOR = 3


def silence_limit_s(interval_s: int) -> int:
    """How long a device may stay silent before it is offline (the alert's threshold)."""
    return OFFLINE_FACTOR * interval_s


def is_offline(last_heartbeat_ms: int, interval_s: int, now_ms: int) -> bool:
    """True when ``now`` is strictly more than 3 × interval_s after the last heartbeat."""
    return now_ms - last_heartbeat_ms > silence_limit_s(interval_s) * 1000


def offline_at(last_heartbeat_ms: int, interval_s: int) -> int:
    """The instant (ms) a device silent since ``last_heartbeat_ms`` went offline: from the data
    alone, so a re-computed offline state change or alert carries the same time."""
    return last_heartbeat_ms + silence_limit_s(interval_s) * 1000
