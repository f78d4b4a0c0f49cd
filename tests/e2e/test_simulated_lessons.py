"""Simulated classrooms through the whole stack: every lesson summary in ClickHouse = ground truth.

Runs ``classtrace simulate`` (gateway target, device tokens registered by the simulator) against
a real ``classtrace up`` and compares, lesson by lesson, what the worker stored in
``lesson_summary`` with the ground truth computed from the generated events — S-T mode exactly,
rates to 1e-6 — and the number of distinct events in ``events FINAL`` with the expected count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smart_classroom_agents.ground_truth import LessonTruth, compare_lesson
from tests.fixtures.stack import running_stack  # noqa: F401  (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def classtrace(*args, data_dir, timeout=180):
    argv = [sys.executable, "-m", "classtrace.cli", *args, "--data-dir", str(data_dir)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def query_json(sql, data_dir):
    return [
        json.loads(line)
        for line in classtrace("query", sql, "--format", "json", data_dir=data_dir).splitlines()
        if line
    ]


def test_every_lesson_summary_matches_ground_truth(running_stack):  # noqa: F811
    data_dir = running_stack.data_dir
    out = classtrace(
        "simulate", "--classrooms", "3", "--lessons", "4", "--lesson-minutes", "3", "--break-minutes", "1",
        "--speed", "0", "--seed", "11", "--quiet", "--format", "json", data_dir=data_dir,
    )  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    truth = json.loads(Path(result["ground_truth"]).read_text())
    expected = {k: LessonTruth(**v) for k, v in truth["lessons"].items()}
    assert len(expected) == 12 and {t.teaching_mode for t in expected.values()} == {
        "lecture",
        "practice",
        "dialogue",
        "mixed",
    }
    schools = ",".join(f"'{s}'" for s in sorted({t.school_id for t in expected.values()}))

    deadline = time.monotonic() + 120
    while True:
        (row,) = query_json(
            f"SELECT count() AS n FROM classtrace.events FINAL WHERE school_id IN ({schools})", data_dir
        )
        rows = query_json(
            f"SELECT * FROM classtrace.lesson_summary FINAL WHERE school_id IN ({schools})", data_dir
        )
        got = {r["lesson_id"]: r for r in rows if r["lesson_id"] in expected}
        problems = [
            p for lesson_id, want in expected.items() for p in compare_lesson(want, got.get(lesson_id, {}))
        ]
        missing = sorted(set(expected) - set(got))
        if (
            int(row["n"]) == truth["counts"]["events"] and not problems and not missing
        ) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert int(row["n"]) == truth["counts"]["events"], "events FINAL differs from the events sent"
    assert not missing, f"lessons without a summary: {missing}"
    assert not problems, "\n".join(problems)
    assert {got[k]["teaching_mode"] for k in expected} == {"lecture", "practice", "dialogue", "mixed"}
