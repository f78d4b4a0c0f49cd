"""read_batch against read_event: it accepts a batch only when read_event accepts every event.

read_batch is the batch form of the DESIGN §4 rules used on the ingest hot paths; read_event
stays the one source of verdicts and reasons. These tests hold the two to each other: a batch
with any broken rule is never accepted, valid batches are (away from the occurred_at limits),
and the column checks that replace per-value ones (event ids as one string, float ranges by
min/max) are exact.
"""

from __future__ import annotations

import math
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classtrace.errors import ValidationError
from classtrace.ids import NIL_UUID, is_uuid
from classtrace.v1 import events_pb2 as pb
from classtrace.validation import _uuids_ok, read_batch, read_event
from tests.helpers.event_cases import BAD, GOOD, _at, make
from tests.helpers.strategies import NOW, events, invalid_events

AT_THE_LIMITS = {_at(300).__code__, _at(-7 * 86_400).__code__}  # read_batch may defer these


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


@settings(max_examples=500)
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
    accepted = read_batch([make("teaching"), event, make("heartbeat")], NOW) is not None
    assert accepted or mutate.__code__ in AT_THE_LIMITS


def test_empty_batch():
    ids = read_batch([], NOW)
    assert ids is not None and ids.school_ids == set()


@pytest.mark.parametrize(
    ("kind", "path", "values"),
    [
        ("teaching", "teaching.confidence", [0.5, math.nan, 0.7]),  # min/max alone would miss it
        ("teaching", "teaching.confidence", [0.5, 0.7, math.nan]),
        ("trace", "trace.score", [1.0, math.nan]),
        ("trace", "trace.score", [2.0, math.inf, 1.0]),
    ],
)
def test_nan_and_inf_anywhere_in_a_float_column_are_refused(kind, path, values):
    batch = []
    for value in values:
        event = make(kind)
        message, leaf = path.split(".")
        setattr(getattr(event, message), leaf, value)
        batch.append(event)
    assert read_batch(batch, NOW) is None


U = "0b6f3c2e-5d1a-4c8e-9f4a-2f1e0c9b7a65"


@pytest.mark.parametrize(
    "ids",
    [
        [U[:-1], U + "a"],  # 35 + 37 characters: the total length still fits
        [U[:-1] + "\n", U],  # a newline inside an id, in a separator's place
        [U, U[:20] + "\n" + U[21:]],
        [U[:8] + "-" + U[9:], U.replace("-", "", 1) + "a"],  # a dash moved
        [U, U[:-1] + "g"],
        [U, U[:-1] + " "],
        [U, U[:-1] + "１"],  # fullwidth digit: not ASCII
        [U, NIL_UUID],
        [NIL_UUID.upper()],
        [U, ""],
    ],
)
def test_uuid_column_check_refuses_near_misses(ids):
    assert not all(is_uuid(i) and i != NIL_UUID for i in ids)
    assert not _uuids_ok(ids)


_NEAR_UUID = st.text(alphabet="0123456789abcdefABCDEF-\ng ", min_size=34, max_size=38)


@settings(max_examples=1000)
@given(
    st.lists(st.one_of(st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()), _NEAR_UUID), max_size=8)
)
def test_uuid_column_check_is_exact(ids):
    assert _uuids_ok(ids) == all(is_uuid(i) and i != NIL_UUID for i in ids)


def test_uuid_column_check_accepts_real_ids():
    assert _uuids_ok([str(uuid.uuid4()) for _ in range(1000)])
