"""Types of the C extension classtrace._wire (classtrace/_wire.c); use it through classtrace.wire."""

from typing import Any

MAX_TEXT: int
MAX_PRESENT: int
MAX_DURATION_MS: int
MAX_HEARTBEAT_INTERVAL_S: int
MAX_FUTURE_S: float
MAX_AGE_S: float

def count_valid(data: bytes, now_s: float, /) -> int: ...
def accept_bound(
    data: bytes,
    now_s: float,
    school_id: str,
    classroom_id: str,
    device_id: str,
    stamp_seconds: int,
    stamp_nanos: int,
    /,
) -> tuple[int, bytes] | None: ...
def scan_events(
    data: bytes, now_s: float, classroom_id: str | None, /
) -> list[tuple[str, str, str, str, str, str, int, int, int, Any, Any, Any, Any]] | None: ...
