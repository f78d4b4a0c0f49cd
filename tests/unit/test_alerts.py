"""Alerts (issue 18): the low_attention rule, raise/clear sequences in the worker, device state
changes, redelivery, the sink's rows and the dashboard's scope."""

from __future__ import annotations

import uuid

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from classtrace.codec import ts_to_ms
from classtrace.tokens import token_hash
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from readers.dashboard.app import LiveService
from readers.dashboard.state import LiveState
from readers.dashboard.viewers import Viewer, ViewerRegistry
from sinks.batcher import Batch, SinkTopics
from sinks.metrics import sink_metrics
from stream_processors.metrics.alerts import (
    DEVICE_OFFLINE,
    LOW_ATTENTION,
    LOW_ATTENTION_KIND,
    LessonAlerts,
    alert_id,
    low_attention,
    raised,
)
from stream_processors.processor import Processor, Record
from tests.helpers.worker_tables import DictTable, Sink

SCHOOL, ROOM = "sch-1", "room-1"
KEY = f"{SCHOOL}/{ROOM}".encode()
T0_MS = 1_790_000_000_000


@pytest.mark.parametrize(
    ("live", "attention", "low"),
    [
        (True, 0.59, True),
        (True, 0.0, True),  # nobody attentive is an observation, not "no data"
        (True, LOW_ATTENTION, False),  # at the threshold: not below
        (True, 0.9, False),
        (True, None, False),  # no observation yet
        (False, 0.1, False),  # ended (or not started): never raised
    ],
)
def test_low_attention_rule(live, attention, low):
    assert low_attention(live, attention) is low


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([(True, 0.5), (True, 0.4), (True, 0.7)], [("raised", 0.5), None, ("cleared", 0.7)]),
        ([(True, 0.5), (False, 0.5)], [("raised", 0.5), ("cleared", 0.0)]),  # the lesson ended
        ([(True, 0.8), (True, None), (False, 0.1)], [None, None, None]),
        ([(True, 0.5), (True, 0.9), (True, 0.5)], [("raised", 0.5), ("cleared", 0.9), ("raised", 0.5)]),
    ],
)
def test_lesson_alerts_raise_once_clear_once_and_forget(steps, expected):
    book = LessonAlerts()
    got = []
    for at, (live, attention) in enumerate(steps):
        alert = book.check("k", (SCHOOL, ROOM, "L1"), live, attention if live else None, T0_MS + at)
        got.append(None if alert is None else (alert.state, alert.value))
    assert got == expected
    assert bool(book.raised) == (expected[-1] is not None and expected[-1][0] == "raised")


def test_alert_ids_come_from_kind_scope_and_raise_time():
    one = raised(DEVICE_OFFLINE, SCHOOL, ROOM, T0_MS, 31.0, 30.0, device_id="cam")
    again = raised(DEVICE_OFFLINE, SCHOOL, ROOM, T0_MS, 45.0, 30.0, device_id="cam")
    assert one.alert_id == again.alert_id == alert_id(DEVICE_OFFLINE, SCHOOL, ROOM, "cam", T0_MS)
    assert uuid.UUID(one.alert_id).version == 5
    others = {
        raised(DEVICE_OFFLINE, SCHOOL, ROOM, T0_MS + 1, 31.0, 30.0, device_id="cam").alert_id,
        raised(DEVICE_OFFLINE, "sch-2", ROOM, T0_MS, 31.0, 30.0, device_id="cam").alert_id,
        raised(DEVICE_OFFLINE, SCHOOL, ROOM, T0_MS, 31.0, 30.0, device_id="tab").alert_id,
        raised(LOW_ATTENTION_KIND, SCHOOL, ROOM, T0_MS, 0.5, 0.6, lesson_id="cam").alert_id,
    }
    assert one.alert_id not in others and len(others) == 4


# -- the worker ------------------------------------------------------------------------------------


def _event(n: int, at_ms: int, device: str = "cam", lesson: str = "") -> pb.Event:
    event = pb.Event(
        event_id=str(uuid.UUID(int=n, version=4)),
        school_id=SCHOOL,
        classroom_id=ROOM,
        device_id=device,
        lesson_id=lesson,
        seq=n,
        device_kind=pb.DEVICE_KIND_CAMERA,
    )
    event.occurred_at.FromMilliseconds(at_ms)
    event.received_at.FromMilliseconds(at_ms)
    return event


def heartbeat(n: int, at_ms: int, device: str = "cam") -> pb.Event:
    event = _event(n, at_ms, device)
    event.heartbeat.interval_s = 10
    event.heartbeat.battery_pct = 80
    event.heartbeat.spool_depth = 3
    return event


def lesson_phase(n: int, at_ms: int, phase: int) -> pb.Event:
    event = _event(n, at_ms, "app", "L1")
    event.lesson.phase = phase
    event.lesson.enrolled = 40
    return event


def frame(n: int, at_ms: int, attentive: int, present: int = 40) -> pb.Event:
    event = _event(n, at_ms, "cam", "L1")
    event.observation.attentive = attentive
    event.observation.present = present
    return event


class World:
    """A processor on dict tables with a settable wall clock."""

    def __init__(self, now_ms: int = T0_MS) -> None:
        self.now_ms = now_ms
        self.out = Sink()
        self.devices = DictTable()
        self.offset = 0
        self.proc = self.fresh()

    def fresh(self) -> Processor:
        """A new processor on the same tables (a restart)."""
        self.proc = Processor(
            DictTable(), DictTable(), self.devices, self.out, clock=lambda: self.now_ms / 1000
        )
        return self.proc

    def send(self, *events: pb.Event) -> None:
        self.offset += 1
        value = pb.EventBatch(events=list(events)).SerializeToString()
        self.proc.process_records([Record("classtrace.events.v1", 0, self.offset, KEY, value)])

    def statuses(self) -> list[ppb.DeviceStatus]:
        return [d for b in self.out.batches for d in b.devices]

    def alerts(self) -> list[ppb.Alert]:
        return [a for _key, a in self.out.alerts_out]


def test_device_goes_silent_then_returns_raises_then_clears():
    w = World()
    w.send(heartbeat(1, T0_MS))
    w.now_ms = T0_MS + 5_000
    w.send(heartbeat(2, T0_MS + 5_000))  # not a change: still online
    w.now_ms = T0_MS + 5_000 + 30_001  # silent for more than 3 × 10 s
    w.proc.tick()
    w.proc.tick()
    w.now_ms += 60_000
    w.send(heartbeat(3, w.now_ms))
    changes = [(d.offline, ts_to_ms(d.changed_at)) for d in w.statuses() if d.changed]
    assert changes == [(False, T0_MS), (True, T0_MS + 35_000), (False, w.now_ms)]
    assert [d.changed for d in w.statuses()] == [True, False, True, True]
    (up, down) = w.alerts()
    assert (up.kind, up.state, up.device_id, up.threshold) == (DEVICE_OFFLINE, "raised", "cam", 30.0)
    assert (down.state, down.alert_id, down.version) == ("cleared", up.alert_id, 2)
    assert ts_to_ms(down.raised_at) == T0_MS + 35_000 and ts_to_ms(down.cleared_at) == w.now_ms
    assert down.value == (w.now_ms - (T0_MS + 35_000)) / 1000
    assert {k for k, _ in w.out.alerts_out} == {KEY}


def test_a_restart_neither_repeats_the_offline_state_nor_misses_the_return():
    w = World()
    w.send(heartbeat(1, T0_MS))
    w.now_ms = T0_MS + 40_000
    w.proc.tick()
    assert len(w.alerts()) == 1
    w.fresh()  # restart: the book (with what it reported) comes back from its table
    w.proc.tick()
    assert len(w.alerts()) == 1
    w.now_ms += 10_000
    w.send(heartbeat(2, w.now_ms))
    raised_alert, cleared_alert = w.alerts()
    assert cleared_alert.state == "cleared" and cleared_alert.alert_id == raised_alert.alert_id


def test_attention_below_the_threshold_raises_and_the_end_of_the_lesson_clears():
    w = World()
    w.send(lesson_phase(1, T0_MS, pb.LessonLifecycle.PHASE_STARTED), frame(2, T0_MS + 1_000, 30))
    assert w.alerts() == []  # 0.75
    w.send(frame(3, T0_MS + 2_000, 4), frame(4, T0_MS + 3_000, 4))  # mean (0.75 + 0.1 + 0.1) / 3
    w.send(frame(5, T0_MS + 4_000, 4))  # still low: nothing new
    w.send(lesson_phase(6, T0_MS + 9_000, pb.LessonLifecycle.PHASE_ENDED))
    up, down = w.alerts()
    assert (up.kind, up.state, up.lesson_id, up.threshold) == (
        LOW_ATTENTION_KIND,
        "raised",
        "L1",
        LOW_ATTENTION,
    )
    assert up.value == pytest.approx((0.75 + 0.1 + 0.1) / 3) and ts_to_ms(up.raised_at) == T0_MS + 3_000
    assert (down.state, down.alert_id, ts_to_ms(down.cleared_at)) == ("cleared", up.alert_id, T0_MS + 9_000)


def test_a_redelivered_record_raises_nothing_more():
    w = World()
    records = [lesson_phase(1, T0_MS, pb.LessonLifecycle.PHASE_STARTED), frame(2, T0_MS + 1_000, 4)]
    w.send(*records)
    w.send(*records)
    assert [a.state for a in w.alerts()] == ["raised"]


# -- the sink ----------------------------------------------------------------------------------


def test_the_sink_stores_state_changes_and_alerts_and_dead_letters_poison():
    topics = SinkTopics(events="ev", metrics="me", deadletter="dl", access="ac", alerts="al")
    batch = Batch(topics, sink_metrics())
    changed = ppb.DeviceStatus(
        school_id=SCHOOL, classroom_id=ROOM, device_id="cam", offline=True, changed=True
    )
    changed.changed_at.FromMilliseconds(T0_MS)
    quiet = ppb.DeviceStatus(school_id=SCHOOL, classroom_id=ROOM, device_id="tab")
    batch.add("me", 0, 0, ppb.MetricBatch(devices=[changed, quiet]).SerializeToString())
    alert = raised(DEVICE_OFFLINE, SCHOOL, ROOM, T0_MS, 31.0, 30.0, device_id="cam")
    batch.add("al", 0, 0, alert.SerializeToString())
    batch.add("al", 0, 1, b"\xff\xff")
    (row,) = [batch.blocks["device_status"].row(i) for i in range(len(batch.blocks["device_status"]))]
    assert (row["device_id"], row["state"], row["at"]) == ("cam", "offline", T0_MS)
    (stored,) = [batch.blocks["alerts"].row(i) for i in range(len(batch.blocks["alerts"]))]
    assert stored["alert_id"] == alert.alert_id and stored["cleared_at"] is None and stored["version"] == 1
    assert len(batch.blocks["dead_letters"]) == 1
    assert "al" in topics.all()


# -- the dashboard -------------------------------------------------------------------------------


def test_a_school_viewer_sees_only_its_schools_alert_history():
    state = LiveState()
    state.apply_alerts(
        [
            raised(DEVICE_OFFLINE, "A", "C101", T0_MS, 31.0, 30.0, device_id="cam-a"),
            raised(DEVICE_OFFLINE, "B", "C101", T0_MS, 31.0, 30.0, device_id="cam-b"),
        ]
    )
    registry = ViewerRegistry(
        [Viewer("a", "A", token_hash("tok-a"), "now"), Viewer("all", "", token_hash("tok"), "now")]
    )
    client = TestClient(Starlette(routes=LiveService(None, state=state, registry=registry).routes()))
    mine = client.get("/v1/live/classrooms/A/C101", params={"token": "tok-a"})
    assert [a["device_id"] for a in mine.json()["alert_history"]] == ["cam-a"]
    assert client.get("/v1/live/classrooms/B/C101", params={"token": "tok-a"}).status_code == 404
    cards = client.get("/v1/live/classrooms", params={"token": "tok-a"}).json()["classrooms"]
    assert [(c["school_id"], c["alerts"]) for c in cards] == [("A", ["device_offline"])]
    theirs = client.get("/v1/live/classrooms/B/C101", params={"token": "tok"}).json()["alert_history"]
    assert [a["device_id"] for a in theirs] == ["cam-b"]
