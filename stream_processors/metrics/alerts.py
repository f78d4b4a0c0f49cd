"""Alerts (docs/DESIGN.md §7, docs/METRICS.md "Alerts"): the rules that raise and clear them.

One home per rule: ``low_attention`` is decided here (the dashboard shows what the worker raised,
it does not judge again); ``device_offline`` is :func:`stream_processors.metrics.devices.is_offline`
and only becomes an :class:`Alert` here. An alert's id is derived from its kind, its scope and
the instant it was raised, all taken from the data (event time or ingest time, never the
worker's wall clock), so a re-delivered or re-computed alert has the same id and collapses in
ClickHouse; ``version`` 1 (raised) < 2 (cleared) makes the cleared row win.
"""

from __future__ import annotations

import uuid

from classtrace.codec import ms_to_ts, ts_to_ms
from classtrace.v1 import pipeline_pb2 as ppb
from stream_processors.metrics.devices import silence_limit_s

__all__ = [
    "CLEARED",
    "DEVICE_OFFLINE",
    "KINDS",
    "LOW_ATTENTION",
    "LOW_ATTENTION_KIND",
    "RAISED",
    "LessonAlerts",
    "alert_id",
    "cleared",
    "device_alert",
    "low_attention",
    "raised",
]

LOW_ATTENTION = 0.6
"""A live lesson whose attention_rate so far is below this raises ``low_attention`` (no minimum
duration: the first lesson state below it raises, the first at or above it clears)."""
DEVICE_OFFLINE = "device_offline"
LOW_ATTENTION_KIND = "low_attention"
KINDS = (DEVICE_OFFLINE, LOW_ATTENTION_KIND)
RAISED, CLEARED = "raised", "cleared"
_VERSION = {RAISED: 1, CLEARED: 2}
_NAMESPACE = uuid.UUID("5b0c4c8e-7f0a-4d65-9d1e-1a2b7c0e5a18")
"""Fixed namespace of the alert ids (uuid5): changing it would give every alert a new id."""


def low_attention(live: bool, attention: float | None) -> bool:
    """The low_attention rule: a live lesson with an attention rate (any observation) below the threshold."""
    return live and attention is not None and attention < LOW_ATTENTION


def alert_id(kind: str, school_id: str, classroom_id: str, subject: str, raised_ms: int) -> str:
    """The alert's id: the same kind, scope (lesson or device) and raise instant give the same id."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}\x1f{school_id}\x1f{classroom_id}\x1f{subject}\x1f{raised_ms}"))


def raised(
    kind: str,
    school_id: str,
    classroom_id: str,
    raised_ms: int,
    value: float,
    threshold: float,
    *,
    lesson_id: str = "",
    device_id: str = "",
) -> ppb.Alert:
    """A raised alert of a lesson (``lesson_id``) or a device (``device_id``)."""
    subject = lesson_id if kind == LOW_ATTENTION_KIND else device_id
    out = ppb.Alert(
        alert_id=alert_id(kind, school_id, classroom_id, subject, raised_ms),
        kind=kind,
        state=RAISED,
        school_id=school_id,
        classroom_id=classroom_id,
        lesson_id=lesson_id,
        device_id=device_id,
        value=value,
        threshold=threshold,
        version=_VERSION[RAISED],
    )
    ms_to_ts(raised_ms, out.raised_at)
    return out


def cleared(alert: ppb.Alert, cleared_ms: int, value: float) -> ppb.Alert:
    """``alert`` cleared at ``cleared_ms``: same id, the value that cleared it, a higher version."""
    out = ppb.Alert()
    out.CopyFrom(alert)
    out.state = CLEARED
    out.value = value
    out.version = _VERSION[CLEARED]
    ms_to_ts(cleared_ms, out.cleared_at)
    return out


class LessonAlerts:
    """The raised ``low_attention`` alerts, by lesson key; a cleared alert is forgotten at once.

    Bounded by the lessons that are live and below the threshold right now. Not persisted: after
    a restart a lesson still below it is raised again at its next change, under a new id.
    """

    __slots__ = ("raised",)

    def __init__(self) -> None:
        self.raised: dict[str, ppb.Alert] = {}

    def check(
        self,
        key: str,
        scope: tuple[str, str, str],
        live: bool,
        attention: float | None,
        at_ms: int,
    ) -> ppb.Alert | None:
        """Apply the rule to lesson ``key`` (``scope`` = school, classroom, lesson) as of ``at_ms``
        (event time); the alert raised or cleared by this change, or None."""
        low = low_attention(live, attention)
        current = self.raised.get(key)
        if low and current is None:
            school, classroom, lesson = scope
            alert = raised(
                LOW_ATTENTION_KIND,
                school,
                classroom,
                at_ms,
                attention or 0.0,
                LOW_ATTENTION,
                lesson_id=lesson,
            )
            self.raised[key] = alert
            return alert
        if not low and current is not None:
            del self.raised[key]
            return cleared(current, max(at_ms, ts_to_ms(current.raised_at)), attention or 0.0)
        return None


def device_alert(status: ppb.DeviceStatus, offline_since_ms: int, now_ms: int) -> ppb.Alert | None:
    """The ``device_offline`` alert a reported status raises or clears, or None.

    Raised when the status is a change to offline (at its ``changed_at``; value = seconds silent
    at detection); cleared when it brings back a device offline since ``offline_since_ms`` (at
    its ``changed_at``, the heartbeat's receipt; value = seconds it was offline). Both carry the
    raise instant, hence the same id, without any alert state of their own.
    """
    threshold = float(silence_limit_s(status.interval_s))
    school, classroom, device = status.school_id, status.classroom_id, status.device_id
    if status.changed and status.offline:
        at = ts_to_ms(status.changed_at)
        return raised(DEVICE_OFFLINE, school, classroom, at, (now_ms - at) / 1000 + threshold, threshold,
                      device_id=device)  # fmt: skip
    if not offline_since_ms:
        return None
    alert = raised(DEVICE_OFFLINE, school, classroom, offline_since_ms, 0.0, threshold, device_id=device)
    back = max(ts_to_ms(status.changed_at), offline_since_ms)
    return cleared(alert, back, (back - offline_since_ms) / 1000)
