"""Two schools, one room number (issue 17): both have room-01 … room-08 with lessons at the same time.

Through the whole stack (gateway, worker, sink, dashboard): every lesson summary in ClickHouse
equals its school's ground truth, and each school's viewer sees only its own rooms, live on the
dashboard and in its reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from smart_classroom_agents.ground_truth import LessonTruth, compare_lesson
from smart_classroom_agents.timetable import CLASSROOMS_PER_SCHOOL
from tests.fixtures.stack import running_stack  # noqa: F401  (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def classtrace(*args: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "classtrace.cli", *args, "--data-dir", str(data_dir)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def summaries(data_dir: Path) -> dict[tuple[str, str], dict[str, object]]:
    out = classtrace(
        "query", "SELECT * FROM classtrace.lesson_summary FINAL", "--format", "json", data_dir=data_dir
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line]
    return {(str(r["school_id"]), str(r["lesson_id"])): r for r in rows}


def test_two_schools_with_the_same_room_numbers_stay_apart(running_stack, tmp_path):  # noqa: F811
    data_dir = running_stack.data_dir
    out = classtrace(
        "simulate", "--classrooms", str(2 * CLASSROOMS_PER_SCHOOL), "--lessons", "1", "--lesson-minutes", "3",
        "--speed", "0", "--seed", "23", "--shared-room-numbers", "--quiet", "--format", "json",
        data_dir=data_dir,
    ).stdout  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    truth = json.loads(Path(result["ground_truth"]).read_text())
    expected = {k: LessonTruth(**v) for k, v in truth["lessons"].items()}
    rooms = {(t.school_id, t.classroom_id) for t in expected.values()}
    schools = sorted({school for school, _ in rooms})
    assert len(schools) == 2 and len(rooms) == 2 * CLASSROOMS_PER_SCHOOL
    assert {room for s, room in rooms if s == schools[0]} == {room for s, room in rooms if s == schools[1]}

    # In ClickHouse: each school's summaries equal its ground truth, exactly.
    deadline = time.monotonic() + 150
    while True:
        got = summaries(data_dir)
        problems = [
            p for t in expected.values() for p in compare_lesson(t, got.get((t.school_id, t.lesson_id), {}))
        ]
        missing = [
            t.lesson_id for t in expected.values() if not got.get((t.school_id, t.lesson_id), {}).get("final")
        ]
        if (not problems and not missing) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not missing, f"lessons without a final summary: {missing}"
    assert not problems, "\n".join(problems)
    for t in expected.values():
        row = got[(t.school_id, t.lesson_id)]
        assert (row["classroom_id"], row["teacher_id"]) == (t.classroom_id, t.teacher_id)

    # Live: each school's viewer sees its own eight rooms, and not the other school's room-01.
    url = str(running_stack.runtime["gateway_url"])
    tokens = {
        s: classtrace("viewers", "add", "--school", s, data_dir=data_dir).stdout.strip().splitlines()[-1]
        for s in schools
    }
    for mine, other in (schools, schools[::-1]):
        headers = {"Authorization": f"Bearer {tokens[mine]}"}
        cards = _cards(url, headers)
        assert {(c["school_id"], c["classroom_id"]) for c in cards} == {r for r in rooms if r[0] == mine}
        own = httpx.get(f"{url}/v1/live/classrooms/{mine}/room-01", headers=headers, timeout=10)
        assert own.status_code == 200 and own.json()["school_id"] == mine
        lesson = next(t for t in expected.values() if t.school_id == mine and t.classroom_id == "room-01")
        assert own.json()["lesson_id"] == lesson.lesson_id
        theirs = httpx.get(f"{url}/v1/live/classrooms/{other}/room-01", headers=headers, timeout=10)
        assert theirs.status_code == 404

    # Reports: a lesson is (school, lesson); the other school cannot open it under its own id.
    lesson = next(iter(t for t in expected.values() if t.school_id == schools[0]))
    report = tmp_path / "r.html"
    done = classtrace(
        "report", "lesson", lesson.lesson_id, "--school", schools[0], "--out", str(report), data_dir=data_dir
    )
    assert lesson.lesson_id in report.read_text()
    elsewhere = classtrace(
        "report", "lesson", lesson.lesson_id, "--school", schools[1], "--out", str(tmp_path / "x.html"),
        data_dir=data_dir, check=False,
    )  # fmt: skip
    assert elsewhere.returncode != 0 and not (tmp_path / "x.html").exists(), done.stdout


def _cards(url: str, headers: dict[str, str]) -> list[dict[str, object]]:
    """The snapshot's cards once every room of the viewer's school has one (the feed catches up)."""
    deadline = time.monotonic() + 30
    while True:
        body = httpx.get(f"{url}/v1/live/classrooms", headers=headers, timeout=10).json()
        cards: list[dict[str, object]] = body["classrooms"] if isinstance(body, dict) else body
        if len(cards) >= CLASSROOMS_PER_SCHOOL or time.monotonic() > deadline:
            return cards
        time.sleep(0.5)
