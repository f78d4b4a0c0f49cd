"""`classtrace soak`'s pure parts: how days are laid in event time, and what it writes."""

from __future__ import annotations

import itertools

from classtrace.validation import MAX_AGE
from loadtests.soak import Sample, SoakPlan, day_end_ms, describe, write_outputs


def test_days_are_back_to_back_and_inside_validations_horizon():
    plan = SoakPlan(days=20, classrooms=40, lessons=6, horizon_days=3)
    now = 1_800_000_000_000
    ends = [day_end_ms(plan, now, d) for d in range(plan.days)]
    assert ends[-1] == now
    assert {b - a for a, b in itertools.pairwise(ends)} == {plan.day_ms}
    assert now - (ends[0] - plan.day_ms) < MAX_AGE.total_seconds() * 1000  # the first day is still valid
    assert plan.horizon_s == 3 * plan.day_ms / 1000


def test_outputs_state_flat_figures(tmp_path):
    plan = SoakPlan(days=6, classrooms=10, lessons=4, horizon_days=2)
    samples = [
        Sample(
            d,
            d * 10.0,
            d * 1000,
            300.0 + d,
            min(d, 3) * 40,
            100,
            10,
            min(d, 3) * 960.0,
            50.0,
            8.0,
            d,
            d,
            d,
            d,
        )
        for d in range(1, 7)
    ]
    summary = write_outputs(tmp_path, plan, samples, drained=True)
    assert summary["settled_days"] == [4, 5, 6]
    assert summary["lesson_keys_range"] == [120, 120]
    assert summary["bytes_per_lesson"] == 24 * 1024
    assert summary == {**summary, **describe(samples, plan)}
    assert (tmp_path / "soak.csv").read_text().count("\n") == 7
    assert (tmp_path / "soak.svg").read_text().startswith("<svg") and "polyline" in (
        tmp_path / "soak.svg"
    ).read_text()
