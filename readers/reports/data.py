"""What a report shows, read from ClickHouse: the teacher portrait and one lesson (docs/DESIGN.md §6).

Queries run through the client's ``query`` with bound parameters (ids come from the command
line); every read of a ReplacingMergeTree uses ``FINAL``, so a re-delivered row never shows twice.
Lesson and teacher ids repeat across schools, so every query filters by the school as well: a
lesson is ``(school_id, lesson_id)``, a teacher ``(school_id, teacher_id)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

__all__ = ["LessonData", "QueryClient", "TeacherData", "load_lesson", "load_teacher"]


class QueryClient(Protocol):
    """The part of a clickhouse-connect client reports use."""

    def query(self, query: str, parameters: Any = None) -> Any: ...


@dataclass
class LessonData:
    summary: dict[str, Any]
    attention: list[tuple[datetime, float]] = field(default_factory=list)
    hand_raising: list[tuple[datetime, float]] = field(default_factory=list)


@dataclass
class TeacherData:
    school_id: str
    teacher_id: str
    weeks: list[dict[str, Any]]
    lessons: list[dict[str, Any]]


def _rows(client: QueryClient, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=params)
    names = list(result.column_names)
    return [dict(zip(names, row, strict=True)) for row in result.result_rows]


def load_lesson(client: QueryClient, database: str, school_id: str, lesson_id: str) -> LessonData | None:
    """Lesson ``(school_id, lesson_id)``'s latest summary and metric series; None when unknown."""
    key = {"s": school_id, "l": lesson_id}
    rows = _rows(
        client,
        f"""SELECT * FROM `{database}`.lesson_summary FINAL
            WHERE school_id = %(s)s AND lesson_id = %(l)s LIMIT 1""",
        key,
    )
    if not rows:
        return None
    series = _rows(
        client,
        f"""SELECT metric, window_start, value FROM `{database}`.metric_points FINAL
            WHERE school_id = %(s)s AND lesson_id = %(l)s AND metric IN ('attention_rate', 'hand_raising')
            ORDER BY window_start""",
        key,
    )
    data = LessonData(rows[0])
    for row in series:
        target = data.attention if row["metric"] == "attention_rate" else data.hand_raising
        target.append((row["window_start"], float(row["value"])))
    return data


def load_teacher(
    client: QueryClient, database: str, school_id: str, teacher_id: str, weeks: int = 12
) -> TeacherData | None:
    """Teacher ``(school_id, teacher_id)``'s portrait per ISO week and recent ended lessons."""
    week_rows = _rows(
        client,
        f"""SELECT * FROM `{database}`.teacher_portrait WHERE school_id = %(s)s AND teacher_id = %(t)s
            ORDER BY week_start DESC LIMIT %(n)s""",
        {"s": school_id, "t": teacher_id, "n": weeks},
    )
    if not week_rows:
        return None
    lessons = _rows(
        client,
        f"""SELECT lesson_id, subject, grade, started_at, st_rt, st_ch, teaching_mode, attention_rate,
                   answer_accuracy, hand_raises
            FROM `{database}`.lesson_summary FINAL
            WHERE school_id = %(s)s AND teacher_id = %(t)s AND final
            ORDER BY started_at DESC LIMIT 50""",
        {"s": school_id, "t": teacher_id},
    )
    return TeacherData(school_id, teacher_id, list(reversed(week_rows)), lessons)
