"""Per-classroom state outside lessons: 10 s event-time windows and the device book.

A window ``[start, start + 10 s)`` of one classroom holds its events count, an attention
histogram and the HAND_RAISING counts of its observations, with its own
:class:`~stream_processors.dedup.SeenEvents`, so the point it emits is exact under duplicates,
shuffling and restarts. The device book keeps each device's latest heartbeat (a maximum by
occurred_at: idempotent and order-free without any dedup).
"""

from __future__ import annotations

from typing import Any

import orjson

from classtrace.codec import ms_to_ts, ts_to_ms
from classtrace.identity import room_key
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from stream_processors.dedup import SeenEvents
from stream_processors.metrics.attention import AttentionHistogram
from stream_processors.metrics.devices import is_offline, offline_at
from stream_processors.metrics.windows import WINDOW_MS, hand_raising

__all__ = ["DeviceBook", "WindowState"]

_HAND_RAISING = pb.ClassObservation.BEHAVIOR_HAND_RAISING


class WindowState:
    """One classroom's 10 s tumbling window."""

    __slots__ = (
        "attention",
        "classroom_id",
        "events",
        "hands",
        "key",
        "lessons",
        "observations",
        "room",
        "school_id",
        "seen",
        "start_ms",
    )

    def __init__(self, classroom_id: str, start_ms: int, school_id: str = "") -> None:
        self.classroom_id = classroom_id
        self.start_ms = start_ms
        self.school_id = school_id
        self.room = room_key(school_id, classroom_id)
        self.key = self.key_of(self.room, start_ms)
        self.events = 0
        self.observations = 0
        self.hands = 0
        self.attention = AttentionHistogram()
        self.lessons: set[str] = set()
        self.seen = SeenEvents()

    @staticmethod
    def key_of(room: str, start_ms: int) -> str:
        """The window's table key: its classroom's :func:`~classtrace.identity.room_key` and start."""
        return f"{room}/{start_ms}"

    def count(self, device_id: str, seq: int, event_id: str, lesson_id: str) -> bool:
        """Count an event of this window; False for a duplicate (nothing changes then)."""
        if not self.seen.add(device_id, seq, event_id):
            return False
        self.events += 1
        if lesson_id:
            self.lessons.add(lesson_id)
        return True

    def observe(self, observation: pb.ClassObservation) -> None:
        """Add a counted camera frame: its attention, and its HAND_RAISING count."""
        self.observations += 1
        self.attention.add(observation.attentive, observation.present)
        for count in observation.counts:
            if count.behavior == _HAND_RAISING:
                self.hands += count.count

    def add_points(self, batch: ppb.MetricBatch) -> None:
        """Append the window's metric_points to ``batch``: events; attention_rate and hand_raising
        when observed.

        hand_raising is the mean HAND_RAISING count per observation (raised hands per frame): a
        sum would count the same raised hand once per frame it stays up. The point's lesson_id is
        the smallest lesson id among the window's events — a rule that does not depend on order.
        Points are built in place in the batch (a message built apart and copied in costs
        twice as much, once per window and batch).
        """
        lesson = min(self.lessons) if self.lessons else ""
        values: list[tuple[str, float]] = [("events", float(self.events))]
        rate = self.attention.rate()
        if rate is not None:
            values.append(("attention_rate", rate))
        hands = hand_raising(self.hands, self.observations)
        if hands is not None:
            values.append(("hand_raising", hands))
        add = batch.points.add
        for metric, value in values:
            point = add(school_id=self.school_id, classroom_id=self.classroom_id, lesson_id=lesson,
                        metric=metric, value=value)  # fmt: skip
            ms_to_ts(self.start_ms, point.window_start)
            ms_to_ts(self.start_ms + WINDOW_MS, point.window_end)

    def to_bytes(self) -> bytes:
        """The table value."""
        return orjson.dumps(
            {
                "c": self.classroom_id,
                "w": self.start_ms,
                "s": self.school_id,
                "n": self.events,
                "o": self.observations,
                "h": self.hands,
                "a": self.attention.to_list(),
                "l": sorted(self.lessons),
                "seen": self.seen.to_obj(),
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> WindowState:
        """Inverse of :meth:`to_bytes`."""
        obj = orjson.loads(raw)
        state = cls(obj["c"], obj["w"], obj["s"])
        state.events, state.observations, state.hands = obj["n"], obj["o"], obj["h"]
        state.attention = AttentionHistogram.from_list(obj["a"])
        state.lessons = set(obj["l"])
        state.seen = SeenEvents.from_obj(obj["seen"])
        return state


class DeviceBook:
    """The latest heartbeat of each device of one classroom, and the state last reported for each."""

    __slots__ = ("classroom_id", "devices", "reported", "school_id")

    def __init__(self, classroom_id: str, school_id: str) -> None:
        self.classroom_id = classroom_id
        self.school_id = school_id
        # device_id → [occurred_ms, event_id, seen_ms, interval_s, battery, spool, kind, school]
        self.devices: dict[str, list[Any]] = {}
        # device_id → the state its last status reported: 0 online, else the ms it went offline.
        # Persisted with the book, so a restart neither repeats an offline state nor misses a return.
        self.reported: dict[str, int] = {}

    def take(self, event: pb.Event, occurred: int) -> bool:
        """Take a heartbeat event if it is the device's latest; True if it was.

        ``occurred`` is its occurred_at in ms. Offline is judged on its received_at (the ingest
        clock, comparable with ours); a record produced straight to Kafka may lack received_at,
        and then the device clock has to do.
        """
        device_id, event_id = event.device_id, event.event_id
        current = self.devices.get(device_id)
        if current is not None and (current[0], current[1]) >= (occurred, event_id):
            return False
        seen_ms = ts_to_ms(event.received_at) if event.HasField("received_at") else occurred
        beat = event.heartbeat
        self.devices[device_id] = [
            occurred, event_id, seen_ms, beat.interval_s, beat.battery_pct, beat.spool_depth,
            event.device_kind, event.school_id,
        ]  # fmt: skip
        return True

    def status(self, device_id: str, now_ms: int) -> ppb.DeviceStatus:
        """DeviceStatus of one device as of ``now_ms`` (wall clock)."""
        occurred, _eid, seen, interval, battery, spool, kind, school = self.devices[device_id]
        out = ppb.DeviceStatus(
            school_id=school,
            classroom_id=self.classroom_id,
            device_id=device_id,
            device_kind=kind,
            interval_s=interval,
            offline=is_offline(seen, interval, now_ms),
            battery_pct=battery,
            spool_depth=spool,
        )
        ms_to_ts(occurred, out.last_heartbeat)
        return out

    def report(self, device_id: str, now_ms: int) -> tuple[ppb.DeviceStatus, int]:
        """:meth:`status`, marked ``changed`` (with ``changed_at``) when its online/offline state
        is the device's first or differs from the last one reported (the one home of a
        device_status row); and, when it brings the device back, the ms it was offline since
        (the raised alert to clear), else 0."""
        out = self.status(device_id, now_ms)
        seen, interval = self.devices[device_id][2:4]
        before = self.reported.get(device_id)
        after = offline_at(seen, interval) if out.offline else 0
        if before is None or bool(before) != bool(after):
            self.reported[device_id] = after
            out.changed = True
            ms_to_ts(after or seen, out.changed_at)
        return out, (before or 0) if not after else 0

    def newly_offline(self, now_ms: int) -> list[str]:
        """Devices that went silent for 3 × interval_s and were last reported online: each is
        found until :meth:`report` reports it offline."""
        reported = self.reported
        return [
            device_id
            for device_id, entry in self.devices.items()
            if not reported.get(device_id) and is_offline(entry[2], entry[3], now_ms)
        ]

    def forget_before(self, floor_ms: int) -> bool:
        """Drop devices whose latest heartbeat occurred before ``floor_ms`` (the state horizon,
        docs/DESIGN.md §10): a retired tablet is not watched for ever. True if any was dropped."""
        silent = [device for device, entry in self.devices.items() if entry[0] < floor_ms]
        for device in silent:
            del self.devices[device]
            self.reported.pop(device, None)
        return bool(silent)

    def to_bytes(self) -> bytes:
        """The table value."""
        return orjson.dumps(
            {"c": self.classroom_id, "s": self.school_id, "d": self.devices, "r": self.reported},
            option=orjson.OPT_SORT_KEYS,
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> DeviceBook:
        """Inverse of :meth:`to_bytes`."""
        obj = orjson.loads(raw)
        # Books written before 0.3 lack "s"; each device entry carries its school (index 7).
        school = obj.get("s") or next((entry[7] for entry in obj["d"].values()), "")
        book = cls(obj["c"], school)
        book.devices = obj["d"]
        book.reported = obj.get("r", {})  # books written before 0013 reported nothing yet
        return book
