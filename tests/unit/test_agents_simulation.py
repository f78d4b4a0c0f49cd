"""Simulated classrooms: deterministic, valid, pseudonymised, and delivered through the EdgeProducer."""

from __future__ import annotations

import json

import pytest

from classtrace.cli import main
from classtrace.codec import decode_batch, ts_to_ms
from classtrace.ids import is_pseudonym
from classtrace.validation import split_events
from producers.transport.base import Delivery
from smart_classroom_agents.classroom import classroom_devices, classroom_stream
from smart_classroom_agents.clock import SimClock, anchor_start_ms
from smart_classroom_agents.devices import tablet
from smart_classroom_agents.outlets import EdgeOutlet, ListOutlet
from smart_classroom_agents.runner import SimulationPlan, plan_classrooms, run_simulation

NOW_MS = 1_790_000_000_000
KEY = b"test-pseudonym-key"
PLAN = SimulationPlan(classrooms=3, lessons=2, seed=7, speed=0, lesson_minutes=4, break_minutes=1)


def _events(plan=PLAN, now_ms=NOW_MS, key=KEY):
    start, rooms = plan_classrooms(plan, now_ms)
    return rooms, [ev for room in rooms for _, ev in classroom_stream(room, plan.seed, key, start)]


@pytest.fixture(scope="module")
def generated():
    return _events()


def test_same_seed_same_events(generated):
    _, again = _events()
    assert [e.SerializeToString() for e in again] == [e.SerializeToString() for e in generated[1]]


def test_other_seed_other_lessons(generated):
    _, other = _events(SimulationPlan(3, 2, seed=8, speed=0, lesson_minutes=4, break_minutes=1))
    assert [e.SerializeToString() for e in other] != [e.SerializeToString() for e in generated[1]]


def test_a_later_run_of_a_seed_never_reuses_event_ids(generated):
    _, later = _events(now_ms=NOW_MS + 3_600_000)
    assert not {e.event_id for e in later} & {e.event_id for e in generated[1]}
    assert len(later) == len(generated[1])


def test_every_event_passes_validation(generated):
    _, events = generated
    _ok, rejected = split_events(events, NOW_MS / 1000)
    assert not rejected, rejected[:3]
    assert len({e.event_id for e in events}) == len(events)
    assert {e.WhichOneof("payload") for e in events} == {
        "lesson",
        "teaching",
        "observation",
        "trace",
        "heartbeat",
    }


def test_no_event_is_in_the_receivers_future_when_sent():
    """Anchoring: at any speed ≥ 1 an event due at sim time X is sent no earlier than wall time X."""
    span = 3 * 3_600_000
    for speed in (1, 10, 600):
        start = anchor_start_ms(NOW_MS, span, speed)
        for d in (0, span // 3, span):
            wall = NOW_MS + d / speed
            assert start + d <= wall + 1
    assert anchor_start_ms(NOW_MS, span, 0) + span < NOW_MS


def test_student_ids_are_pseudonyms_and_raw_ids_never_leave(generated):
    rooms, events = generated
    traces = [e for e in events if e.WhichOneof("payload") == "trace"]
    assert traces and all(is_pseudonym(e.trace.student_id) for e in traces)
    raw = [
        s.raw_id.encode()
        for room in rooms
        for s in tablet.roster(
            room.school_id, room.classroom_id, room.enrolled, __import__("random").Random(0)
        )
    ]
    blob = b"".join(e.SerializeToString() for e in events)
    assert not any(r in blob for r in raw)


def test_devices_send_in_time_order_with_increasing_seq(generated):
    rooms, _ = generated
    start, _ = plan_classrooms(PLAN, NOW_MS)
    emitted = list(classroom_stream(rooms[0], PLAN.seed, KEY, start))
    assert [t for t, _ in emitted] == sorted(t for t, _ in emitted)
    assert all(ts_to_ms(ev.occurred_at) <= t for t, ev in emitted)
    per_device: dict[str, list[int]] = {}
    for _, ev in emitted:
        per_device.setdefault(ev.device_id, []).append(ev.seq)
    assert set(per_device) == {d.device_id for d in classroom_devices(rooms[0]).all()}
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in per_device.values())


def test_clock_paces_simulated_time():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    clock = SimClock(1_000_000, 10.0, monotonic=lambda: now[0], sleep=sleep)
    clock.wait_until(1_000_000 + 50_000)  # 50 s simulated at ×10 = 5 s real
    assert slept == [pytest.approx(5.0)]
    assert clock.now_ms() == 1_050_000
    clock.wait_until(1_020_000)  # already past: no wait
    assert len(slept) == 1


def test_run_writes_ground_truth_matching_what_was_sent(tmp_path):
    outlet = ListOutlet()
    result = run_simulation(PLAN, outlet, KEY, tmp_path, now_ms=NOW_MS, quiet=True)
    truth = json.loads(result.ground_truth.read_text())
    assert result.complete and result.unsent == 0
    assert truth["counts"]["events"] == len(outlet.events) == result.events
    assert len(truth["lessons"]) == result.lessons == 6
    assert json.loads((result.out_dir / "run.json").read_text())["plan"]["seed"] == 7


class RecordingTransport:
    """A Transport that acknowledges everything and keeps the records."""

    per_device = True
    max_record_bytes = 1 << 20

    def __init__(self):
        self.records = []

    def send(self, records):
        self.records.extend(records)
        return [Delivery() for _ in records]

    def close(self):
        pass


def test_edge_outlet_delivers_every_event_through_the_sdk(tmp_path):
    transport = RecordingTransport()
    outlet = EdgeOutlet(transport, tmp_path / "spool", KEY)
    result = run_simulation(PLAN, outlet, KEY, tmp_path / "out", quiet=True)  # real now: the SDK validates
    assert result.unsent == 0
    delivered = [ev for r in transport.records for ev in decode_batch(r.payload).events]
    assert all(len({ev.device_id for ev in decode_batch(r.payload).events}) == 1 for r in transport.records)
    truth = json.loads(result.ground_truth.read_text())
    assert len({ev.event_id for ev in delivered}) == truth["counts"]["events"]


def test_cli_dry_run_prints_the_ground_truth_path(tmp_path, capsys):
    code = main(
        [
            "simulate",
            "--classrooms",
            "1",
            "--lessons",
            "1",
            "--lesson-minutes",
            "3",
            "--speed",
            "0",
            "--dry-run",
            "--quiet",
            "--format",
            "json",
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lessons"] == 1 and out["ground_truth"].startswith(str(tmp_path))


def test_each_classroom_sends_through_its_own_producer_even_when_room_numbers_repeat(tmp_path):
    """Every record leaves the producer of the room (school, classroom) its events belong to."""
    from classtrace.v1 import events_pb2 as pb
    from smart_classroom_agents.outlets import EdgeOutlet
    from smart_classroom_agents.runner import SimulationPlan, run_simulation

    class Recording:
        per_device = True
        max_record_bytes = 1 << 20

        def __init__(self) -> None:
            self.mismatched = 0
            self.rooms: set[tuple[str, str]] = set()

        def send(self, records):
            for r in records:
                self.rooms.add((r.school_id, r.classroom_id))
                events = pb.EventBatch.FromString(r.payload).events
                self.mismatched += sum(
                    (e.school_id, e.classroom_id) != (r.school_id, r.classroom_id) for e in events
                )
            return [Delivery() for _ in records]

        def close(self) -> None:
            pass

    transport = Recording()
    secret = b"s" * 32
    plan = SimulationPlan(16, 1, 23, 0, 3, 1, shared_room_numbers=True)
    run_simulation(
        plan, EdgeOutlet(transport, tmp_path / "spool", secret), secret, tmp_path / "out", quiet=True
    )
    assert transport.mismatched == 0
    assert len(transport.rooms) == 16 and {room for _, room in transport.rooms} == {
        f"room-{n:02d}" for n in range(1, 9)
    }
