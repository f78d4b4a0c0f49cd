"""read_batch against read_event: a batch is accepted exactly when read_event accepts every event.

read_batch is the batch entry point of the docs/DESIGN.md §4 rules (the gateway's); it calls
read_event on each event and holds no rule of its own. These tests keep it that way: same verdicts
on generated batches with and without broken rules, on every documented case (the occurred_at
limits included), and the distinct ids read_event read.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classtrace.errors import ValidationError
from classtrace.v1 import events_pb2 as pb
from classtrace.validation import read_batch, read_event
from tests.helpers.event_cases import BAD, GOOD, make
from tests.helpers.strategies import NOW, events, invalid_events


def _valid(event: pb.Event) -> bool:
    try:
        read_event(event, NOW)
    except ValidationError:
        return False
    return True


@settings(max_examples=300)
@given(st.lists(events(), min_size=1, max_size=30))
def test_valid_batches_are_accepted_with_their_distinct_ids(batch):
    ids = read_batch(batch, NOW)
    assert ids is not None
    assert ids.school_ids == {e.school_id for e in batch}
    assert ids.classroom_ids == {e.classroom_id for e in batch}
    assert ids.device_ids == {e.device_id for e in batch}


@settings(max_examples=300)
@given(st.lists(st.one_of(events(), invalid_events().map(lambda case: case[0])), max_size=12))
def test_read_batch_gives_read_events_verdict(batch):
    assert (read_batch(batch, NOW) is not None) == all(map(_valid, batch))


@settings(max_examples=300)
@given(st.lists(events(), max_size=12), invalid_events(), st.data())
def test_a_batch_with_a_broken_rule_is_never_accepted(good, bad, data):
    event, _field = bad
    batch = list(good)
    batch.insert(data.draw(st.integers(0, len(batch))), event)
    assert not _valid(event)
    assert read_batch(batch, NOW) is None


@pytest.mark.parametrize(
    ("kind", "mutate", "field", "reason"), BAD, ids=[f"{f}:{r[:40]}" for _, _, f, r in BAD]
)
def test_every_documented_bad_case_is_refused_in_a_batch(kind, mutate, field, reason):
    event = make(kind)
    mutate(event)
    assert read_batch([make("trace"), event, make("observation")], NOW) is None


@pytest.mark.parametrize(("kind", "mutate"), [(k, m) for k, m, _ in GOOD], ids=[i for *_, i in GOOD])
def test_every_documented_good_case_is_accepted_in_a_batch(kind, mutate):
    event = make(kind)
    mutate(event)
    assert read_batch([make("teaching"), event, make("heartbeat")], NOW) is not None


def test_empty_batch():
    ids = read_batch([], NOW)
    assert ids is not None and ids.school_ids == set()


def test_a_repeated_field_is_read_as_it_is_iterated():
    batch = pb.EventBatch(events=[make("trace"), make("lesson")])
    ids = read_batch(batch.events, NOW)
    assert ids is not None and ids.device_ids == {"cam-01"}
