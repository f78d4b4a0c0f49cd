"""The live state of every classroom, built from ``MetricBatch`` records — pure, no I/O.

The feed thread calls :meth:`LiveState.apply`; HTTP handlers read cards, details and "what changed
since sequence N" for Server-Sent Events. Every change bumps a global sequence number and stamps the
classroom with it, so each SSE client sends only the cards that changed since its last push instead
of re-sending 2,000 classrooms. Memory is bounded: one card per classroom, one lesson per classroom
(the latest), and at most :data:`MAX_SERIES_POINTS` points per series.

A classroom is ``(school_id, classroom_id)`` (docs/DESIGN.md, Identity): room numbers repeat across
schools, so two schools' ``C101`` are two cards. The key is read from each point, summary,
device status and alert, never from the Kafka record key; an item without a school is dropped,
not guessed.

Alerts are the worker's (``Alert`` records of classtrace.alerts.v1, :meth:`LiveState.apply_alerts`):
a card shows the kinds raised and not yet cleared, the detail view the room's latest
:data:`MAX_ALERTS`. The dashboard judges no rule itself (docs/DESIGN.md §7, one home).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from classtrace.codec import ts_to_ms
from classtrace.v1 import events_pb2, pipeline_pb2

__all__ = [
    "MAX_ALERTS",
    "MAX_SERIES_POINTS",
    "SERIES_METRICS",
    "ClassroomState",
    "LiveState",
    "RoomKey",
]

MAX_SERIES_POINTS = 720
"""Per series: two hours of 10 s windows; older windows are dropped first."""
MAX_ST_CODES = 720
"""S-T samples kept per lesson (30 s each: six hours), a guard against a lesson never ended."""
SERIES_METRICS = frozenset({"attention_rate", "hand_raising"})
"""The metric_points series the detail view plots; other metrics are not kept in memory."""
MAX_ALERTS = 20
"""Alerts kept per classroom for its history (latest raised first); older ones are dropped."""

_SUMMARY_NUMBERS = (
    "st_rt",
    "st_ch",
    "attention_rate",
    "participation_rate",
    "answer_accuracy",
)
_SUMMARY_COUNTS = ("st_samples", "answers", "hand_raises", "enrolled")
_SUMMARY_TEXTS = ("lesson_id", "teacher_id", "subject", "grade", "teaching_mode")

RoomKey = tuple[str, str]
"""``(school_id, classroom_id)``: the identity of a classroom."""


@dataclass
class ClassroomState:
    """What the dashboard knows about one classroom: its latest lesson, series and devices."""

    school_id: str
    classroom_id: str
    lesson: dict[str, Any] = field(default_factory=dict)
    lesson_version: int = -1
    lesson_started_ms: int = 0
    st_codes: str = ""
    series: dict[str, dict[int, float]] = field(default_factory=dict)
    series_lesson: str = ""
    """The lesson the series belong to: points may arrive before that lesson's first summary."""
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """alert_id → the alert's latest state (highest version), at most :data:`MAX_ALERTS`."""
    seq: int = 0
    updated_ms: int = 0
    card: dict[str, Any] = field(default_factory=dict)
    """Cached JSON-ready card; rebuilt only when the classroom changes."""

    def build_card(self) -> dict[str, Any]:
        """The grid card: the lesson's live metrics, offline devices and the kinds of raised alerts."""
        offline = sorted(d for d, s in self.devices.items() if s["offline"])
        live = bool(self.lesson) and not self.lesson.get("final", False)
        alerts = sorted({a["kind"] for a in self.alerts.values() if a["state"] == "raised"})
        card: dict[str, Any] = {
            "classroom_id": self.classroom_id,
            "school_id": self.school_id,
            "live": live,
            "devices": len(self.devices),
            "devices_offline": offline,
            "alerts": alerts,
            "seq": self.seq,
            "updated_at": self.updated_ms,
        }
        card.update(self.lesson)
        return card

    def detail(self) -> dict[str, Any]:
        """The card plus what the detail view plots: S-T codes, series, every device."""
        series = self.series if self.series_lesson == self.lesson.get("lesson_id", "") else {}
        return {
            **self.card,
            "st_codes": self.st_codes,
            "series": {name: sorted(points.items()) for name, points in sorted(series.items())},
            "device_list": [self.devices[d] for d in sorted(self.devices)],
            "alert_history": sorted(self.alerts.values(), key=_latest_first),
        }


class LiveState:
    """Thread-safe map (school_id, classroom_id) → :class:`ClassroomState`, with a change sequence."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rooms: dict[RoomKey, ClassroomState] = {}
        self._seq = 0
        self.records = 0

    @property
    def seq(self) -> int:
        """The sequence number of the latest change (0 before any)."""
        return self._seq

    def __len__(self) -> int:
        return len(self._rooms)

    # -- writing -----------------------------------------------------------------------------
    def apply(self, batch: pipeline_pb2.MetricBatch, now_ms: int = 0) -> set[RoomKey]:
        """Fold one MetricBatch into the state; returns the ``(school_id, classroom_id)`` that changed."""
        changed: set[RoomKey] = set()
        with self._lock:
            self.records += 1
            for summary in batch.summaries:
                if self._apply_summary(summary):
                    changed.add((summary.school_id, summary.classroom_id))
            for point in batch.points:
                if self._apply_point(point):
                    changed.add((point.school_id, point.classroom_id))
            for device in batch.devices:
                if self._apply_device(device):
                    changed.add((device.school_id, device.classroom_id))
            self._stamp(changed, now_ms)
        return changed

    def apply_alerts(self, alerts: Iterable[pipeline_pb2.Alert], now_ms: int = 0) -> set[RoomKey]:
        """Fold alerts raised or cleared by the worker; returns the classrooms that changed."""
        changed: set[RoomKey] = set()
        with self._lock:
            for alert in alerts:
                if self._apply_alert(alert):
                    changed.add((alert.school_id, alert.classroom_id))
            self._stamp(changed, now_ms)
        return changed

    def _stamp(self, changed: set[RoomKey], now_ms: int) -> None:
        """Give the changed classrooms the next sequence number and a fresh card (lock held)."""
        if not changed:
            return
        self._seq += 1
        for key in changed:
            room = self._rooms[key]
            room.seq = self._seq
            room.updated_ms = now_ms
            room.card = room.build_card()

    def _room(self, school_id: str, classroom_id: str) -> ClassroomState:
        key = (school_id, classroom_id)
        room = self._rooms.get(key)
        if room is None:
            room = self._rooms[key] = ClassroomState(school_id, classroom_id)
        return room

    def _apply_summary(self, s: pipeline_pb2.LessonSummary) -> bool:
        if not s.school_id or not s.classroom_id or not s.lesson_id:
            return False
        room = self._room(s.school_id, s.classroom_id)
        started = ts_to_ms(s.started_at)
        if s.lesson_id != room.lesson.get("lesson_id"):
            if started < room.lesson_started_ms:
                return False  # a late re-emission of an older lesson: the card shows the latest
            room.lesson_version = -1
            room.st_codes = ""
            if room.series_lesson != s.lesson_id:
                room.series, room.series_lesson = {}, s.lesson_id
        elif s.version < room.lesson_version:
            return False  # out of date (re-emissions increase the version)
        room.lesson_version = s.version
        room.lesson_started_ms = started
        lesson: dict[str, Any] = {k: getattr(s, k) for k in _SUMMARY_TEXTS}
        lesson.update({k: round(getattr(s, k), 4) for k in _SUMMARY_NUMBERS})
        lesson.update({k: getattr(s, k) for k in _SUMMARY_COUNTS})
        lesson["started_at"] = started
        lesson["ended_at"] = ts_to_ms(s.ended_at) if s.HasField("ended_at") else None
        lesson["final"] = s.final
        lesson["version"] = s.version
        room.lesson = lesson
        room.st_codes = s.st_codes[-MAX_ST_CODES:]
        if s.attention_rate > 0 and room.series_lesson == s.lesson_id:
            # The lesson's attention so far at its S-T progress: the detail chart's fallback
            # while no 10 s attention_rate windows arrive.
            at = started + s.st_samples * 30_000
            _put(room.series.setdefault("attention_lesson", {}), at, s.attention_rate)
        return True

    def _apply_point(self, p: pipeline_pb2.MetricUpdate) -> bool:
        if p.metric not in SERIES_METRICS or not p.school_id or not p.classroom_id:
            return False
        room = self._room(p.school_id, p.classroom_id)
        start = ts_to_ms(p.window_start)
        if p.lesson_id != room.series_lesson:
            if start < room.lesson_started_ms:
                return False  # a late window of an older lesson than the one on the card
            room.series, room.series_lesson = {}, p.lesson_id
        return _put(room.series.setdefault(p.metric, {}), start, p.value)

    def _apply_device(self, d: pipeline_pb2.DeviceStatus) -> bool:
        if not d.school_id or not d.classroom_id or not d.device_id:
            return False
        room = self._room(d.school_id, d.classroom_id)
        status = {
            "device_id": d.device_id,
            "kind": events_pb2.DeviceKind.Name(d.device_kind).removeprefix("DEVICE_KIND_").lower()
            if d.device_kind in events_pb2.DeviceKind.values()
            else str(d.device_kind),
            "offline": d.offline,
            "last_heartbeat": ts_to_ms(d.last_heartbeat),
            "interval_s": d.interval_s,
            "battery_pct": round(d.battery_pct, 1),
            "spool_depth": d.spool_depth,
        }
        previous = room.devices.get(d.device_id)
        if previous is not None and previous["last_heartbeat"] > status["last_heartbeat"]:
            return False  # an older status arriving late
        if previous == status:
            return False
        room.devices[d.device_id] = status
        return True

    def _apply_alert(self, a: pipeline_pb2.Alert) -> bool:
        if not a.school_id or not a.classroom_id or not a.alert_id:
            return False
        room = self._room(a.school_id, a.classroom_id)
        previous = room.alerts.get(a.alert_id)
        if previous is not None and previous["version"] >= a.version:
            return False  # a redelivery, or a raise arriving after its clear
        room.alerts[a.alert_id] = {
            "alert_id": a.alert_id,
            "kind": a.kind,
            "state": a.state,
            "lesson_id": a.lesson_id,
            "device_id": a.device_id,
            "raised_at": ts_to_ms(a.raised_at),
            "cleared_at": ts_to_ms(a.cleared_at) if a.HasField("cleared_at") else None,
            "value": round(a.value, 4),
            "threshold": round(a.threshold, 4),
            "version": a.version,
        }
        if len(room.alerts) > MAX_ALERTS:
            for old in sorted(room.alerts.values(), key=_latest_first)[MAX_ALERTS:]:
                del room.alerts[old["alert_id"]]
        return True

    # -- reading -----------------------------------------------------------------------------
    def cards(self, school: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        """``(seq, cards)`` of every classroom (of ``school`` only when given), by school and id."""
        with self._lock:
            rooms = _scoped(self._rooms.values(), school)
            return self._seq, [r.card for r in sorted(rooms, key=_order)]

    def changes_since(self, seq: int, school: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        """``(seq, cards)`` of the classrooms that changed after ``seq`` (of ``school`` only)."""
        with self._lock:
            if seq >= self._seq:
                return self._seq, []
            rooms = [r for r in _scoped(self._rooms.values(), school) if r.seq > seq]
            return self._seq, [r.card for r in sorted(rooms, key=_order)]

    def detail(self, school_id: str, classroom_id: str, scope: str | None = None) -> dict[str, Any] | None:
        """Classroom ``(school_id, classroom_id)``'s detail; None when unknown or outside ``scope``.

        Both cases give None, so a school viewer cannot tell another school's room exists.
        """
        if scope is not None and school_id != scope:
            return None
        with self._lock:
            room = self._rooms.get((school_id, classroom_id))
            return None if room is None else room.detail()


def _put(series: dict[int, float], at_ms: int, value: float) -> bool:
    """Set one point of a bounded series (oldest dropped first); False when nothing changed."""
    value = round(value, 4)
    if series.get(at_ms) == value:
        return False
    series[at_ms] = value
    if len(series) > MAX_SERIES_POINTS:
        for old in sorted(series)[: len(series) - MAX_SERIES_POINTS]:
            del series[old]
    return True


def _latest_first(alert: dict[str, Any]) -> tuple[int, str]:
    return -alert["raised_at"], alert["alert_id"]


def _scoped(rooms: Iterable[ClassroomState], school: str | None) -> Iterable[ClassroomState]:
    return rooms if school is None else (r for r in rooms if r.school_id == school)


def _order(room: ClassroomState) -> tuple[str, str]:
    return room.school_id, room.classroom_id
