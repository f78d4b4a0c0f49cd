"""DESIGN §4 validation read straight from EventBatch wire bytes: the hot paths' first judge.

Every entry point validates every event (DESIGN §4), and with upb each field read from Python
costs about as much as the rule applied to it: ~3–4 µs an event in :mod:`classtrace.validation`,
paid at the gateway, the SDK, the worker and the sink. The C scanner ``classtrace._wire`` reads
the same rules from the serialised bytes in a few tens of nanoseconds an event, without
building a message.

It only ever *accepts*: an answer here is "every event passes" or "not shown here" (None / -1),
never a reason. Callers then decode and judge with :mod:`classtrace.validation`, whose errors,
reasons and precedence stay the only ones. Beyond the rules it also refuses what it does not
expect on the wire — unknown fields, a field given twice, two payloads, bools other than 0/1,
32-bit fields wider than 32 bits — so the bytes it accepts parse the same in upb and in
ClickHouse's ProtobufList and may be passed on as they are. tests/unit/test_wire.py holds it to
``read_event`` with property tests over valid, invalid and byte-mutated batches.

The extension is built by ``pip install`` (setup.py). Should it be missing, :data:`COMPILED` is
False, a warning is logged once and every function answers "not shown here", so each caller
takes its Python path: slower, never different.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["COMPILED", "EventRow", "accept_bound", "count_valid", "scan_events"]

logger = logging.getLogger(__name__)

try:
    from classtrace import _wire
except ImportError:  # pragma: no cover - the build always compiles it; see the module docstring
    _wire = None  # type: ignore[assignment]
    logger.warning(
        "classtrace._wire is not built: validation runs in Python only (several times slower); "
        "reinstall with a C compiler and the Python headers (pip install -e .)"
    )

COMPILED = _wire is not None
"""Whether the C scanner is in use (a test requires it where the project is built)."""

EventRow = tuple[str, str, str, str, str, str, int, int, int, Any, Any, Any, Any]
"""One valid event as the worker reads it: ``(payload, event_id, school_id, classroom_id,
device_id, lesson_id, occurred.seconds, occurred.nanos, seq, p0, p1, p2, p3)`` with p0…p3

- ``trace``: correct (unset reads False), student_id, verb, item_id
- ``observation``: present, attentive, ``{behavior: count}``, None
- ``teaching``: kind, duration_ms, None, None
- ``lesson``, ``heartbeat``: the event (its bytes from :func:`scan_events`, the message from
  the worker's Python path), None, None, None — rare, so decoded with upb when met.
"""


def count_valid(data: bytes, now_s: float) -> int:
    """The number of events in EventBatch bytes ``data`` when every one passes at ``now_s``.

    ``now_s`` is the receiver clock in epoch seconds. -1 means "not shown here": some event may
    break a rule or be encoded unexpectedly (or the framing is broken); decode and judge with
    classtrace.validation. An empty batch has 0 events.
    """
    if _wire is None:
        return -1
    return _wire.count_valid(data, now_s)


def accept_bound(
    data: bytes,
    now_s: float,
    school_id: str,
    classroom_id: str,
    device_id: str,
    stamp_ns: int,
) -> tuple[int, bytes] | None:
    """The gateway's common case: ``(n_events, stamped EventBatch bytes)`` or None.

    Accepted when every event passes (as :func:`count_valid`) *and* carries the token's
    ``school_id``, ``classroom_id`` and ``device_id``. The bytes returned are the batch with each
    event's ``received_at`` replaced by ``stamp_ns`` (epoch ns; both Timestamp fields written,
    so no device value survives) — what the gateway publishes. None: judge event by event.
    """
    if _wire is None:
        return None
    seconds, nanos = divmod(stamp_ns, 1_000_000_000)
    return _wire.accept_bound(data, now_s, school_id, classroom_id, device_id, seconds, nanos)


def scan_events(data: bytes, now_s: float, classroom_id: str | None = None) -> list[EventRow] | None:
    """The worker's rows of EventBatch bytes ``data`` when every event passes at ``now_s``.

    With ``classroom_id`` (the record's key), also only when every event belongs to it. One
    :data:`EventRow` per event, in order; ids repeated from the previous event are the same str
    object. None means "not shown here", as in :func:`count_valid`.
    """
    if _wire is None:
        return None
    return _wire.scan_events(data, now_s, classroom_id)
