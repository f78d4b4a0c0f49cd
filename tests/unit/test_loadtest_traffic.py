"""The load generator's batches are what a real device would send: valid, numbered, lesson by lesson."""

from __future__ import annotations

import time

import pytest

from classtrace.v1 import events_pb2 as pb
from classtrace.validation import validate_event
from loadtests.traffic import BatchFactory, load_devices, template_events


def _events(factory: BatchFactory, batches: int) -> list[pb.Event]:
    out: list[pb.Event] = []
    for _ in range(batches):
        body, n = factory.next_batch()
        events = list(pb.EventBatch.FromString(body).events)
        assert len(events) == n
        out.extend(events)
    return out


def test_batches_hold_valid_events_with_fresh_ids_and_increasing_seqs() -> None:
    device = load_devices("0123abcd", 3)[2]
    events = _events(BatchFactory(device, template_events(), batch_size=100), 12)
    now = time.time()
    for event in events:
        validate_event(event, now)
        assert (event.school_id, event.classroom_id, event.device_id) == (
            device.school_id,
            device.classroom_id,
            device.device_id,
        )
    assert len({e.event_id for e in events}) == len(events) == 1200
    assert [e.seq for e in events] == list(range(1, 1201))


def test_a_device_moves_to_the_next_lesson_every_lesson_events() -> None:
    device = load_devices("0123abcd", 1)[0]
    events = _events(BatchFactory(device, template_events(), batch_size=100, lesson_events=250), 10)
    lessons = [e.lesson_id for e in events]
    assert lessons[0] == lessons[249] == f"{device.classroom_id}-L00001"
    assert lessons[250] == f"{device.classroom_id}-L00002"
    assert lessons[-1] == f"{device.classroom_id}-L00004"


def test_large_seqs_survive_the_fixed_width_encoding() -> None:
    device = load_devices("0123abcd", 1)[0]
    factory = BatchFactory(device, template_events(), batch_size=10, lesson_events=2**28)
    factory.counter = 2**32 - 5
    events = _events(factory, 1)
    assert [e.seq for e in events] == list(range(2**32 - 4, 2**32 + 6))
    assert events[0].SerializeToString()  # re-serialises canonically


def test_running_out_of_lesson_numbers_is_an_error_not_corrupt_bytes() -> None:
    factory = BatchFactory(load_devices("0123abcd", 1)[0], template_events(), batch_size=10, lesson_events=1)
    factory.counter = 99_995
    with pytest.raises(OverflowError, match="lesson numbers"):
        factory.next_batch()


def test_events_are_stamped_live_a_batch_covering_its_last_second():
    factory = BatchFactory(load_devices("0123abcd", 1)[0], template_events(), batch_size=100)
    now_ns = 1_795_000_000_123_456_789
    events = list(pb.EventBatch.FromString(factory.next_batch(now_ns)[0]).events)
    stamps = [e.occurred_at.seconds * 1_000_000_000 + e.occurred_at.nanos for e in events]
    assert stamps[-1] == now_ns - now_ns % 10_000_000  # on the 10 ms grid
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] == 99 * 10_000_000
    assert len({s // 10_000_000_000 for s in stamps}) <= 2  # one or two 10 s windows


def test_ids_and_seqs_stay_exact_across_their_precomputed_blocks() -> None:
    factory = BatchFactory(
        load_devices("0123abcd", 1)[0], template_events(), batch_size=20, lesson_events=2**28
    )
    for start in (65_530, 16_380, 2**32 - 5):
        factory.counter = start
        events = _events(factory, 1)
        assert [e.seq for e in events] == list(range(start + 1, start + 21))
        assert [e.event_id[-12:] for e in events] == [f"{c:012x}" for c in range(start + 1, start + 21)]
