"""SeenEvents, the dedup state of every aggregate: exactly a set of (device, seq) / event_id."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_processors.dedup import MAX_SPAN, SeenEvents

_SEQS = st.one_of(
    st.integers(1, 300),  # a device's usual narrow range
    st.integers(1, 4 * MAX_SPAN),  # far apart: beyond one bitmap's span, both ways
    st.just(0),  # no seq: the event_id decides
)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["d1", "d2"]), _SEQS, st.sampled_from(["e1", "e2", "e3"]))))
def test_add_is_true_exactly_once_per_event_whatever_the_order(adds):
    seen, model = SeenEvents(), set()
    for device, seq, event_id in adds:
        key = ("id", event_id) if seq == 0 else (device, seq)
        assert seen.add(device, seq, event_id) is (key not in model)
        model.add(key)
    restored = SeenEvents.from_obj(seen.to_obj())  # what the changelog holds
    for device, seq, event_id in adds:
        assert restored.add(device, seq, event_id) is False


def test_a_seq_far_ahead_then_the_range_growing_past_it_is_still_a_duplicate():
    seen = SeenEvents()
    assert seen.add("d", 1, "a")
    far = 1 + MAX_SPAN + 5
    assert seen.add("d", far, "b")  # too far for the bitmap: kept apart
    assert not seen.add("d", far, "b")
