"""EdgeProducer with an in-memory transport: envelope, seq, pseudonyms, validation, delivery rules."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import HealthCheck, given, settings

from classtrace.codec import decode_batch
from classtrace.errors import ValidationError
from classtrace.ids import is_pseudonym, pseudonymise
from classtrace.v1 import events_pb2 as pb
from producers.backoff import Backoff
from producers.errors import RejectedBatch, SpoolFull, TransportError
from producers.sdk import EdgeProducer
from producers.sender import pack
from producers.spool import SpoolChunk
from producers.transport import Delivery, Outbound
from tests.helpers.strategies import events

KEY = b"test-key"
TABLET = pb.DEVICE_KIND_TABLET


class FakeTransport:
    """Records what was sent; ``fail`` makes the next sends fail (retryable or fatal)."""

    max_record_bytes = 1 << 20

    def __init__(self, per_device: bool = False) -> None:
        self.per_device = per_device
        self.sent: list[Outbound] = []
        self.fail: TransportError | None = None
        self.rejected_per_record = 0

    def send(self, records):
        if self.fail is not None:
            return [Delivery(self.fail) for _ in records]
        self.sent.extend(records)
        return [Delivery(rejected=self.rejected_per_record) for _ in records]

    def close(self) -> None:
        pass

    def events(self) -> list[pb.Event]:
        return [ev for r in self.sent for ev in decode_batch(r.payload).events]


def make(tmp_path, transport=None, **kw):
    kw.setdefault("background", False)
    kw.setdefault("backoff", Backoff(base=0.001, cap=0.002))
    return EdgeProducer(
        "sch-1", "room-1", transport or FakeTransport(), spool=tmp_path / "s.db", pseudonym_key=KEY, **kw
    )


def trace(edge, device="tab-1", student="stu-42"):
    ev = edge.event(device, TABLET, lesson_id="les-1")
    ev.trace.student_id = student
    ev.trace.verb = pb.LearningTrace.VERB_VIEWED
    return ev


def test_envelope_seq_and_pseudonym(tmp_path):
    transport = FakeTransport()
    with make(tmp_path, transport) as edge:
        ids = edge.send_events([trace(edge), trace(edge), trace(edge, "tab-2")])
        assert edge.depth == 3
        assert edge.flush() == 3
        assert edge.depth == 0
    got = transport.events()
    assert [e.event_id for e in got] == ids
    assert [(e.device_id, e.seq) for e in got] == [("tab-1", 1), ("tab-1", 2), ("tab-2", 1)]
    assert all(e.trace.student_id == pseudonymise(KEY, "sch-1", "stu-42") for e in got)
    assert all(not e.HasField("received_at") for e in got)
    assert len(transport.sent) == 1 and transport.sent[0].classroom_id == "room-1"


def test_spool_and_seq_survive_restart(tmp_path):
    down = FakeTransport()
    down.fail = TransportError("network down")
    edge = make(tmp_path, down)
    edge.send_events([trace(edge), trace(edge)])
    edge.close(timeout=0)  # leaves the events spooled, like a device switched off
    transport = FakeTransport()
    with make(tmp_path, transport) as edge:
        edge.send(trace(edge))
        edge.flush()
    assert [e.seq for e in transport.events()] == [1, 2, 3]


def test_invalid_event_spools_nothing_and_keeps_seq(tmp_path):
    with make(tmp_path) as edge:
        bad = trace(edge)
        bad.trace.verb = pb.LearningTrace.VERB_UNSPECIFIED
        with pytest.raises(ValidationError) as info:
            edge.send_events([trace(edge), bad])
        assert info.value.field == "events[1].trace.verb"
        assert edge.depth == 0
        edge.send(trace(edge))
        assert edge.spool.last_seqs() == {"tab-1": 1}


def test_raw_student_id_never_spooled(tmp_path):
    with make(tmp_path) as edge:
        edge.send(trace(edge, student="2023-0117"))
        raw = edge.spool.batch(10)[0].payload
    assert b"2023-0117" not in raw
    assert is_pseudonym(decode_batch(raw).events[0].trace.student_id)


def test_heartbeat_reports_spool_depth(tmp_path):
    transport = FakeTransport()
    with make(tmp_path, transport) as edge:
        edge.send_events([trace(edge) for _ in range(5)])
        edge.heartbeat("tab-1", TABLET, interval_s=10)
        edge.flush()
    assert transport.events()[-1].heartbeat.spool_depth == 5


def test_retryable_failure_keeps_events_then_delivers(tmp_path):
    transport = FakeTransport()
    with make(tmp_path, transport) as edge:
        edge.send_events([trace(edge) for _ in range(3)])
        transport.fail = TransportError("down")
        with pytest.raises(TransportError):
            edge.flush(timeout=0.05)
        assert edge.depth == 3 and edge.stats().send_failures >= 1
        transport.fail = None
        assert edge.flush() == 3
    assert len(transport.events()) == 3


def test_fatal_refusal_quarantines(tmp_path):
    transport = FakeTransport()
    transport.fail = RejectedBatch(413, "too big")
    with make(tmp_path, transport) as edge:
        edge.send_events([trace(edge) for _ in range(2)])
        edge.flush()
        assert (edge.depth, edge.stats().quarantined) == (0, 2)


def test_spool_full_is_reported(tmp_path):
    with make(tmp_path, capacity=3) as edge:
        edge.send_events([trace(edge) for _ in range(3)])
        with pytest.raises(SpoolFull):
            edge.send(trace(edge))
        assert edge.stats().refused_full == 1


def test_background_sender_drains(tmp_path):
    transport = FakeTransport()
    with make(tmp_path, transport, background=True) as edge:
        edge.send_events([trace(edge) for _ in range(10)])
        while edge.depth:
            time.sleep(0.01)
    assert len(transport.events()) == 10


def test_pack_groups_per_device_and_caps_events():
    chunks = [SpoolChunk(i, "c1", f"d{i % 2}", 400, b"") for i in range(6)]
    by_classroom = pack(chunks, "s", per_device=False)
    assert [r.n_events for r, _ in by_classroom] == [800, 800, 800]
    by_device = pack(chunks, "s", per_device=True)
    assert sorted((r.device_id, r.n_events) for r, _ in by_device) == [
        ("d0", 400),
        ("d0", 800),
        ("d1", 400),
        ("d1", 800),
    ]
    assert all(r.n_events <= 1000 for r, _ in by_device)
    assert sorted(row for _, rows in by_device for row in rows) == list(range(6))


def test_backoff_is_capped_and_jittered():
    backoff = Backoff(base=1.0, cap=4.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(20)]
    assert all(0 <= d <= 4.0 for d in delays) and len(set(delays)) > 1
    assert backoff.next_delay(at_least=7.0) == 7.0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ev=events(now=time.time()))
def test_any_valid_event_round_trips(tmp_path_factory, ev):
    transport = FakeTransport()
    with make(tmp_path_factory.mktemp("s"), transport) as edge:
        edge.send(ev)
        edge.flush()
    (got,) = transport.events()
    assert got.event_id == ev.event_id and got.seq == 1


def test_bulk_event_ids_are_canonical_uuid4():
    import uuid

    from classtrace.ids import is_uuid
    from producers.sdk import _event_ids

    ids = _event_ids(2000)
    assert len(set(ids)) == 2000
    assert all(is_uuid(i) and uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)


def test_first_invalid_event_is_named_by_its_index(tmp_path):
    with make(tmp_path) as edge:
        bad = trace(edge)
        bad.school_id = "no spaces"
        with pytest.raises(ValidationError) as info:
            edge.send_events([trace(edge), trace(edge), bad, trace(edge)])
        assert info.value.field == "events[2].school_id"
        assert edge.depth == 0


def test_event_at_the_window_limit_is_spooled(tmp_path):
    # The batch check defers events within a second of the occurred_at limits to read_event.
    now = 1_800_000_000.0
    with make(tmp_path, clock=lambda: now) as edge:
        edge_of_future = trace(edge)
        edge_of_future.occurred_at.seconds = int(now) + 300
        edge.send_events([trace(edge), edge_of_future])
        assert edge.depth == 2


def test_device_kinds_fill_an_unset_kind(tmp_path):
    transport = FakeTransport()
    with make(tmp_path, transport, device_kinds={"tab-1": TABLET}) as edge:
        unset = trace(edge)
        unset.device_kind = pb.DEVICE_KIND_UNSPECIFIED
        camera = trace(edge)
        camera.device_kind = pb.DEVICE_KIND_CAMERA  # a kind the event sets is its own
        edge.send_events([unset, camera])
        edge.flush()
    assert [e.device_kind for e in transport.events()] == [TABLET, pb.DEVICE_KIND_CAMERA]


def test_an_unset_kind_of_an_undeclared_device_is_rejected(tmp_path):
    with make(tmp_path, device_kinds={"tab-1": TABLET}) as edge:
        unset = trace(edge, device="tab-2")
        unset.device_kind = pb.DEVICE_KIND_UNSPECIFIED
        with pytest.raises(ValidationError) as info:
            edge.send_events([trace(edge), unset])
        assert info.value.field == "events[1].device_kind" and edge.depth == 0
