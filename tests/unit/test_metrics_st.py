"""S-T analysis against hand-computed cases (docs/DESIGN.md §7)."""

from __future__ import annotations

import random

import pytest

from classtrace.v1 import events_pb2 as pb
from stream_processors.metrics.st_analysis import (
    SAMPLE_MS,
    T_KINDS,
    add_interval,
    analyse,
    sample_count,
    st_codes,
)

TB = pb.TeachingBehavior


# codes, N_T, runs, st_rt, st_ch, mode — every figure computed by hand.
CASES = [
    ("alternating", "TSTSTSTSTS", 5, 10, 0.5, 0.9, "dialogue"),
    ("pure lecture", "TTTTTTTTTT", 10, 1, 1.0, 0.0, "lecture"),
    ("practice", "SSSSSSSSST", 1, 2, 0.1, 0.1, "practice"),
    ("all students", "SSSS", 0, 1, 0.0, 0.0, "practice"),
    ("rt exactly 0.3 is practice", "TTTSSSSSSS", 3, 2, 0.3, 0.1, "practice"),
    ("rt just above 0.3", "TTTTSSSSSS", 4, 2, 0.4, 0.1, "mixed"),
    ("rt exactly 0.7 is lecture", "TTTTTTTSSS", 7, 2, 0.7, 0.1, "lecture"),
    ("rt just below 0.7", "TTTTTTSSSS", 6, 2, 0.6, 0.1, "mixed"),
    ("ch exactly 0.4 is dialogue", "STTSTTSSSS", 4, 5, 0.4, 0.4, "dialogue"),
    ("rt 6/20 = 0.3 is practice", "STTSTTSSSSSSSSSSSSTT", 6, 6, 0.3, 0.25, "practice"),
    ("ch 7/20 below 0.4 is mixed", "STSTSTSSSSSSSSSSTTTT", 7, 8, 0.35, 0.35, "mixed"),
    ("ch 8/20 is dialogue", "STSTSTSTTTTSSSSSSSSS", 7, 9, 0.35, 0.4, "dialogue"),
    ("no samples", "", 0, 0, 0.0, 0.0, "practice"),
]


@pytest.mark.parametrize(
    ("name", "codes", "n_t", "runs", "rt", "ch", "mode"), CASES, ids=[c[0] for c in CASES]
)
def test_analyse_hand_computed(name, codes, n_t, runs, rt, ch, mode):
    result = analyse(codes)
    assert result.samples == len(codes)
    assert result.t_samples == n_t
    assert result.runs == runs
    assert result.st_rt == pytest.approx(rt)
    assert result.st_ch == pytest.approx(ch)
    assert result.mode == mode


LESSON_START = 1_700_000_000_000
END = LESSON_START + 10 * SAMPLE_MS  # samples at 0, 30, …, 270 s: N = 10


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        ([], "SSSSSSSSSS"),
        ([(0, 30_000)], "TSSSSSSSSS"),  # half-open: 30 s itself is not covered
        ([(1, 30_001)], "STSSSSSSSS"),  # starts after t0, covers t1
        ([(30_000, 60_000)], "STSSSSSSSS"),
        ([(-50_000, 5_000)], "TSSSSSSSSS"),  # began before the lesson
        ([(280_000, 400_000)], "SSSSSSSSSS"),  # after the last sample
        ([(0, 300_000)], "TTTTTTTTTT"),
        (
            [(0, 30_000), (60_000, 90_000), (120_000, 150_000), (180_000, 210_000), (240_000, 270_000)],
            "TSTSTSTSTS",
        ),
        ([(0, 10), (20, 40)], "TSSSSSSSSS"),  # two segments, one sample
    ],
)
def test_codes_from_segments(segments, expected):
    union: list[list[int]] = []
    for start, end in segments:
        add_interval(union, LESSON_START + start, LESSON_START + end)
    assert st_codes(LESSON_START, sample_count(LESSON_START, END), union) == expected


@pytest.mark.parametrize(
    ("end_offset", "inclusive", "n"),
    [
        (300_000, False, 10),
        (300_001, False, 11),
        (0, False, 0),
        (-5, False, 0),
        (0, True, 1),
        (270_000, True, 10),  # live: the sample at the latest event time counts
        (269_999, True, 9),
    ],
)
def test_sample_count(end_offset, inclusive, n):
    assert sample_count(LESSON_START, LESSON_START + end_offset, inclusive=inclusive) == n


@pytest.mark.parametrize(
    ("adds", "union"),
    [
        ([(0, 10), (20, 30)], [[0, 10], [20, 30]]),
        ([(20, 30), (0, 10)], [[0, 10], [20, 30]]),
        ([(0, 10), (10, 20)], [[0, 20]]),  # touching intervals merge
        ([(0, 10), (5, 25), (20, 30)], [[0, 30]]),
        ([(0, 100), (10, 20)], [[0, 100]]),
        ([(5, 5)], []),
        ([(0, 10), (20, 30), (40, 50), (8, 42)], [[0, 50]]),
    ],
)
def test_add_interval_union(adds, union):
    got: list[list[int]] = []
    for start, end in adds:
        add_interval(got, start, end)
    assert got == union


def test_add_interval_reports_growth_and_is_idempotent():
    got: list[list[int]] = []
    assert add_interval(got, 0, 10)
    assert not add_interval(got, 0, 10)
    assert not add_interval(got, 2, 8)
    assert add_interval(got, 5, 15)


def test_union_does_not_depend_on_order():
    rng = random.Random(7)
    segments = [(s, s + rng.randint(1, 90_000)) for s in (rng.randint(0, 2_700_000) for _ in range(200))]
    reference: list[list[int]] = []
    for seg in segments:
        add_interval(reference, *seg)
    for _ in range(20):
        rng.shuffle(segments)
        got: list[list[int]] = []
        for seg in segments + segments[:50]:  # and with duplicates
            add_interval(got, *seg)
        assert got == reference


def test_t_set_is_the_designs():
    assert {TB.Kind.Name(k) for k in T_KINDS} == {
        "KIND_LECTURING",
        "KIND_QUESTIONING",
        "KIND_BOARD_WRITING",
        "KIND_DEMONSTRATING",
        "KIND_FEEDBACK",
        "KIND_ROLL_CALL",
    }
