"""attention_rate, participation_rate, answer_accuracy and device_offline vs hand-computed cases."""

from __future__ import annotations

import random

import orjson
import pytest

from stream_processors.metrics.accuracy import FirstAttempts
from stream_processors.metrics.attention import AttentionHistogram
from stream_processors.metrics.devices import is_offline
from stream_processors.metrics.participation import participation_rate
from stream_processors.metrics.windows import window_start


@pytest.mark.parametrize(
    ("observations", "rate"),
    [
        ([(30, 40), (20, 40), (10, 10)], 0.75),  # (0.75 + 0.5 + 1) / 3
        ([(30, 40), (0, 0), (20, 40)], 0.625),  # present = 0 is skipped, not a zero
        ([(0, 0)], None),
        ([], None),
        ([(1, 3), (1, 3), (1, 3)], 1 / 3),
        ([(0, 25), (25, 25)], 0.5),
    ],
)
def test_attention_rate(observations, rate):
    hist = AttentionHistogram()
    for attentive, present in observations:
        hist.add(attentive, present)
    assert hist.rate() == (None if rate is None else pytest.approx(rate))


def test_attention_rate_is_bit_identical_in_any_order():
    rng = random.Random(3)
    obs = [(rng.randint(0, p), p) for p in (rng.randint(1, 500) for _ in range(2000))]
    reference = AttentionHistogram()
    for o in obs:
        reference.add(*o)
    for _ in range(5):
        rng.shuffle(obs)
        hist = AttentionHistogram()
        for o in obs:
            hist.add(*o)
        assert hist.rate() == reference.rate()  # exact, not approx
        assert AttentionHistogram.from_list(hist.to_list()).rate() == reference.rate()


@pytest.mark.parametrize(
    ("students", "enrolled", "rate"),
    [(30, 40, 0.75), (0, 40, 0.0), (40, 40, 1.0), (5, 0, 0.0), (42, 40, 1.05)],
)
def test_participation_rate(students, enrolled, rate):
    assert participation_rate(students, enrolled) == pytest.approx(rate)


S1, S2 = "ps_" + "1" * 32, "ps_" + "2" * 32
E1, E2, E3 = (
    "00000000-0000-4000-8000-000000000001",
    "00000000-0000-4000-8000-000000000002",
    "00000000-0000-4000-8000-000000000003",
)


@pytest.mark.parametrize(
    ("answers", "n_answers", "accuracy"),
    [
        # (student, item, occurred_ns, event_id, correct)
        ([(S1, "q1", 10, E1, True)], 1, 1.0),
        ([(S1, "q1", 20, E1, True), (S1, "q1", 10, E2, False)], 1, 0.0),  # the earlier one counts
        ([(S1, "q1", 10, E1, False), (S1, "q1", 20, E2, True)], 1, 0.0),  # a retry does not count
        ([(S1, "q1", 10, E2, True), (S1, "q1", 10, E1, False)], 1, 0.0),  # tie: smallest event_id
        ([(S1, "q1", 10, E1, True), (S1, "q2", 10, E2, False), (S2, "q1", 5, E3, True)], 3, 2 / 3),
        ([(S1, "q1", 10, E1, None)], 1, 0.0),  # ungraded answer: answered, not correct
        ([], 0, 0.0),
    ],
)
def test_first_attempt_accuracy(answers, n_answers, accuracy):
    for order in (answers, list(reversed(answers))):
        attempts = FirstAttempts()
        for student, item, ns, eid, correct in order:
            attempts.offer(student, item, ns, eid, bool(correct))
        result = attempts.result()
        assert result.answers == n_answers
        assert result.accuracy == pytest.approx(accuracy)


def test_first_attempts_read_between_offers_follow_every_change():
    """result() and the JSON are kept between changes: each read sees every offer before it."""
    attempts = FirstAttempts()
    seen = []
    for student, item, ns, eid, correct in [
        (S1, "q1", 20, E2, True), (S1, "q1", 30, E1, False), (S1, "q1", 10, E3, False),
        (S2, "q1", 5, E1, True),
    ]:  # fmt: skip
        attempts.offer(student, item, ns, eid, correct)
        result = attempts.result()
        seen.append((result.answers, result.correct, orjson.loads(orjson.dumps(attempts.to_json()))))
    assert [(n, c) for n, c, _ in seen] == [(1, 1), (1, 1), (1, 0), (2, 1)]
    assert seen[2][2] == {f"{S1}|q1": [10, E3, 0]}
    assert seen[3][2] == {f"{S1}|q1": [10, E3, 0], f"{S2}|q1": [5, E1, 1]}


@pytest.mark.parametrize(
    ("last", "interval", "now", "offline"),
    [(0, 10, 30_000, False), (0, 10, 30_001, True), (0, 60, 179_000, False), (5_000, 1, 8_001, True)],
)
def test_device_offline_after_three_intervals(last, interval, now, offline):
    assert is_offline(last, interval, now) is offline


@pytest.mark.parametrize(
    ("ms", "start"), [(0, 0), (9_999, 0), (10_000, 10_000), (1_700_000_012_345, 1_700_000_010_000)]
)
def test_window_start(ms, start):
    assert window_start(ms) == start
