"""Ground truth computes docs/DESIGN.md §7 exactly: hand-built lessons with hand-computed answers."""

from __future__ import annotations

import itertools

import pytest

from classtrace.codec import ms_to_ts
from classtrace.v1 import events_pb2 as pb
from smart_classroom_agents.ground_truth import GroundTruth, compare_lesson, teaching_mode

T0 = 1_790_000_000_000
S = 1000
_ids = iter(range(1, 10**6))
K = pb.TeachingBehavior
V = pb.LearningTrace
A, B = "ps_" + "a" * 32, "ps_" + "b" * 32


def ev(at_ms, *, lid="L1", eid=None, **payload):
    event = pb.Event(
        event_id=eid or f"00000000-0000-4000-8000-{next(_ids):012d}",
        school_id="s",
        classroom_id="c",
        device_id="d",
        lesson_id=lid,
        device_kind=pb.DEVICE_KIND_CAMERA,
    )
    ms_to_ts(T0 + at_ms, event.occurred_at)
    for name, fields in payload.items():
        getattr(event, name).MergeFrom(fields)
    return event


def lesson(end_ms, enrolled=4):
    return [
        ev(
            0,
            lesson=pb.LessonLifecycle(
                phase=pb.LessonLifecycle.PHASE_STARTED, teacher_id="t", enrolled=enrolled
            ),
        ),
        ev(end_ms, lesson=pb.LessonLifecycle(phase=pb.LessonLifecycle.PHASE_ENDED)),
    ]


def seg(start_ms, duration_ms, kind=K.KIND_LECTURING):
    return ev(start_ms, teaching=pb.TeachingBehavior(kind=kind, duration_ms=duration_ms))


def summary(events):
    truth = GroundTruth()
    truth.add_all(events)
    return truth.lessons()["L1"]


@pytest.mark.parametrize(
    ("end_ms", "segments", "n", "codes"),
    [
        # N counts instants strictly before the end: 150 s → 0,30,60,90,120.
        (150 * S, [seg(0, 60 * S)], 5, "TTSSS"),
        (150 * S + 1, [seg(0, 60 * S)], 6, "TTSSSS"),
        # Half-open: a segment ending exactly at 60 s does not cover the 60 s sample.
        (120 * S, [seg(30 * S, 30 * S)], 4, "STSS"),
        (120 * S, [seg(30 * S, 30 * S + 1)], 4, "STTS"),
        # Not in the T set: patrolling covers, but codes S.
        (90 * S, [seg(0, 90 * S, K.KIND_PATROLLING), seg(30 * S, 1, K.KIND_FEEDBACK)], 3, "STS"),
        # Overlapping T segments from different devices count once.
        (90 * S, [seg(0, 45 * S), seg(10 * S, 50 * S, K.KIND_BOARD_WRITING)], 3, "TTS"),
    ],
)
def test_st_analysis(end_ms, segments, n, codes):
    got = summary([*lesson(end_ms), *segments])
    n_t = codes.count("T")
    runs = 1 + sum(a != b for a, b in itertools.pairwise(codes))
    assert got.st_samples == n
    assert got.st_rt == n_t / n
    assert got.st_ch == (runs - 1) / n


@pytest.mark.parametrize(
    ("rt", "ch", "mode"),
    [
        (0.3, 0.9, "practice"),
        (0.31, 0.4, "dialogue"),
        (0.31, 0.39, "mixed"),
        (0.7, 0.0, "lecture"),
        (0.69, 0.5, "dialogue"),
    ],
)
def test_mode_thresholds(rt, ch, mode):
    assert teaching_mode(rt, ch) == mode


def test_attention_participation_accuracy_hand_raises():
    obs = pb.ClassObservation
    events = [
        *lesson(600 * S, enrolled=4),
        ev(5 * S, observation=obs(present=10, attentive=5)),
        ev(10 * S, observation=obs(present=0, attentive=0)),  # skipped, not a zero
        ev(15 * S, observation=obs(present=4, attentive=4)),
        # B answers item q1 twice; the first attempt by occurred_at (wrong) counts even if sent last.
        ev(200 * S, trace=V(student_id=B, verb=V.VERB_ANSWERED, item_id="q1", correct=True)),
        ev(100 * S, trace=V(student_id=B, verb=V.VERB_ANSWERED, item_id="q1", correct=False)),
        ev(110 * S, trace=V(student_id=A, verb=V.VERB_ANSWERED, item_id="q1", correct=True)),
        ev(120 * S, trace=V(student_id=A, verb=V.VERB_ANSWERED, item_id="q2", correct=True)),
        ev(130 * S, trace=V(student_id=A, verb=V.VERB_HAND_RAISED)),
        ev(140 * S, trace=V(student_id=A, verb=V.VERB_HAND_RAISED)),
        ev(150 * S, lid="other", trace=V(student_id=B, verb=V.VERB_HAND_RAISED)),
    ]
    dup = pb.Event()
    dup.CopyFrom(events[-2])
    got = summary([*events, dup])
    assert got.attention_rate == pytest.approx((0.5 + 1.0) / 2)
    assert got.participation_rate == 2 / 4
    assert got.answers == 3
    assert got.answer_accuracy == pytest.approx(2 / 3)
    assert got.hand_raises == 2


def test_counts_ignore_duplicates_and_lessons_without_end_are_left_out(tmp_path):
    events = [*lesson(60 * S), ev(1 * S, lid="open", heartbeat=pb.DeviceHeartbeat(interval_s=60))]
    truth = GroundTruth()
    truth.add_all([*events, events[0]])
    assert truth.total == 3 and truth.duplicates == 1
    assert list(truth.lessons()) == ["L1"]
    doc = truth.to_dict()
    assert doc["counts"]["by_payload"] == {"heartbeat": 1, "lesson": 2}
    assert truth.write(tmp_path / "g.json").exists()


def test_compare_lesson_reports_each_difference():
    expected = summary([*lesson(150 * S), seg(0, 60 * S)])
    row = {"teaching_mode": expected.teaching_mode, "st_samples": 5, "st_rt": 0.4, "answers": 0}
    assert compare_lesson(expected, row) == []
    assert compare_lesson(expected, {**row, "teaching_mode": "dialogue", "st_rt": 0.5}) == [
        "L1 teaching_mode: expected 'mixed', got 'dialogue'",
        "L1 st_rt: expected 0.400000, got 0.500000",
    ]
