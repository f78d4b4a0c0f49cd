"""Ground truth of a simulated run: expected event counts and per-lesson metrics (docs/DESIGN.md §7).

Computed from the events the simulator generated — after the fact and with code written from the
DESIGN text alone, sharing nothing with the stream processors nor with the scripts that produced
the events — so a pipeline bug and a simulator bug cannot cancel out. Duplicates (same event_id)
are ignored, as §7 demands of the pipeline. Times are integer nanoseconds: sample instants and
half-open segment ends are compared exactly.

The JSON file (``ground_truth.json``) holds ``counts`` and ``lessons``; :func:`compare_lesson`
checks a ``lesson_summary`` row against one lesson.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classtrace.identity import room_key
from classtrace.v1 import events_pb2 as pb

__all__ = ["GroundTruth", "LessonTruth", "compare_lesson", "teaching_mode"]

_SAMPLE_NS = 30 * 1_000_000_000
# docs/DESIGN.md §4: the T set of S-T analysis (teacher acting). PATROLLING, GUIDING, LISTENING are not in it.
_T_SET = frozenset(
    pb.TeachingBehavior.Kind.Value(f"KIND_{name}")
    for name in ("LECTURING", "QUESTIONING", "BOARD_WRITING", "DEMONSTRATING", "FEEDBACK", "ROLL_CALL")
)
_STARTED = pb.LessonLifecycle.PHASE_STARTED
_ENDED = pb.LessonLifecycle.PHASE_ENDED
_ANSWERED = pb.LearningTrace.VERB_ANSWERED
_HAND_RAISED = pb.LearningTrace.VERB_HAND_RAISED


def teaching_mode(st_rt: float, st_ch: float) -> str:
    """§7: practice if rt ≤ 0.3, else lecture if rt ≥ 0.7, else dialogue if ch ≥ 0.4, else mixed."""
    if st_rt <= 0.3:
        return "practice"
    if st_rt >= 0.7:
        return "lecture"
    return "dialogue" if st_ch >= 0.4 else "mixed"


@dataclass
class _Acc:
    """What one lesson's events contribute, before the metrics are derived."""

    school_id: str = ""
    classroom_id: str = ""
    teacher_id: str = ""
    subject: str = ""
    grade: str = ""
    enrolled: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    t_segments: list[tuple[int, int]] = field(default_factory=list)
    ratio_sum: float = 0.0
    ratio_n: int = 0
    students: set[str] = field(default_factory=set)
    first_answers: dict[tuple[str, str], tuple[int, bool]] = field(default_factory=dict)
    hand_raises: int = 0


@dataclass(frozen=True)
class LessonTruth:
    """The expected ``lesson_summary`` of one lesson (None where §7 leaves it undefined)."""

    lesson_id: str
    school_id: str
    classroom_id: str
    teacher_id: str
    subject: str
    grade: str
    enrolled: int
    started_at: str
    ended_at: str
    st_samples: int
    st_rt: float
    st_ch: float
    teaching_mode: str
    attention_rate: float | None
    participation_rate: float | None
    answers: int
    answer_accuracy: float | None
    hand_raises: int


def _ns(ts: Any) -> int:
    return int(ts.seconds) * 1_000_000_000 + int(ts.nanos)


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class GroundTruth:
    """Accumulates events (``add``) and derives counts and lesson metrics."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lessons: dict[str, _Acc] = {}
        self.duplicates = 0
        self.by_payload: Counter[str] = Counter()
        self.by_device_kind: Counter[str] = Counter()
        self.by_classroom: Counter[str] = Counter()

    def add_all(self, events: Iterable[pb.Event]) -> None:
        """Add many events."""
        for event in events:
            self.add(event)

    def add(self, event: pb.Event) -> None:
        """Count one event; a second event with a seen event_id changes nothing."""
        if event.event_id in self._seen:
            self.duplicates += 1
            return
        self._seen.add(event.event_id)
        payload = event.WhichOneof("payload") or "none"
        self.by_payload[payload] += 1
        self.by_device_kind[pb.DeviceKind.Name(event.device_kind)] += 1
        self.by_classroom[room_key(event.school_id, event.classroom_id)] += 1
        if event.lesson_id:
            self._add_to_lesson(event, payload)

    def _add_to_lesson(self, event: pb.Event, payload: str) -> None:
        acc = self._lessons.setdefault(event.lesson_id, _Acc())
        acc.school_id, acc.classroom_id = event.school_id, event.classroom_id
        at = _ns(event.occurred_at)
        if payload == "lesson":
            life = event.lesson
            if life.phase == _STARTED:
                acc.start_ns = at
                acc.teacher_id, acc.subject, acc.grade = life.teacher_id, life.subject, life.grade
                acc.enrolled = life.enrolled
            elif life.phase == _ENDED:
                acc.end_ns = at
        elif payload == "teaching":
            if event.teaching.kind in _T_SET:
                acc.t_segments.append((at, at + event.teaching.duration_ms * 1_000_000))
        elif payload == "observation":
            if event.observation.present:
                acc.ratio_sum += event.observation.attentive / event.observation.present
                acc.ratio_n += 1
        elif payload == "trace":
            self._add_trace(acc, event.trace, at)

    @staticmethod
    def _add_trace(acc: _Acc, trace: pb.LearningTrace, at: int) -> None:
        acc.students.add(trace.student_id)
        if trace.verb == _HAND_RAISED:
            acc.hand_raises += 1
        elif trace.verb == _ANSWERED:
            key = (trace.student_id, trace.item_id)
            first = acc.first_answers.get(key)
            if first is None or at < first[0]:
                acc.first_answers[key] = (at, trace.HasField("correct") and trace.correct)

    @property
    def total(self) -> int:
        """Distinct events added: what ``SELECT count() FROM events FINAL`` should say."""
        return len(self._seen)

    def lessons(self) -> dict[str, LessonTruth]:
        """Expected summaries of every lesson with both a start and an end."""
        out: dict[str, LessonTruth] = {}
        for lesson_id, acc in sorted(self._lessons.items()):
            if acc.start_ns is not None and acc.end_ns is not None:
                out[lesson_id] = _derive(lesson_id, acc, acc.start_ns, acc.end_ns)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ground-truth document: counts, then one entry per lesson."""
        return {
            "counts": {
                "events": self.total,
                "duplicates_ignored": self.duplicates,
                "by_payload": dict(sorted(self.by_payload.items())),
                "by_device_kind": dict(sorted(self.by_device_kind.items())),
                "by_classroom": dict(sorted(self.by_classroom.items())),
            },
            "lessons": {k: asdict(v) for k, v in self.lessons().items()},
        }

    def write(self, path: Path) -> Path:
        """Write :meth:`to_dict` as JSON to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False))
        return path


def _derive(lesson_id: str, acc: _Acc, start: int, end: int) -> LessonTruth:
    codes: list[bool] = []
    t = start
    while t < end:
        codes.append(any(lo <= t < hi for lo, hi in acc.t_segments))
        t += _SAMPLE_NS
    n = len(codes)
    runs = sum(1 for k in range(n) if k == 0 or codes[k] != codes[k - 1])
    st_rt = sum(codes) / n if n else 0.0
    st_ch = (runs - 1) / n if n else 0.0
    answers = len(acc.first_answers)
    correct = sum(1 for _, ok in acc.first_answers.values() if ok)
    return LessonTruth(
        lesson_id=lesson_id,
        school_id=acc.school_id,
        classroom_id=acc.classroom_id,
        teacher_id=acc.teacher_id,
        subject=acc.subject,
        grade=acc.grade,
        enrolled=acc.enrolled,
        started_at=_iso(start),
        ended_at=_iso(end),
        st_samples=n,
        st_rt=st_rt,
        st_ch=st_ch,
        teaching_mode=teaching_mode(st_rt, st_ch),
        attention_rate=acc.ratio_sum / acc.ratio_n if acc.ratio_n else None,
        participation_rate=len(acc.students) / acc.enrolled if acc.enrolled else None,
        answers=answers,
        answer_accuracy=correct / answers if answers else None,
        hand_raises=acc.hand_raises,
    )


_EXACT = (
    "school_id",
    "classroom_id",
    "teacher_id",
    "subject",
    "grade",
    "st_samples",
    "teaching_mode",
    "answers",
    "hand_raises",
)
_CLOSE = ("st_rt", "st_ch", "attention_rate", "participation_rate", "answer_accuracy")


def compare_lesson(expected: LessonTruth, row: Mapping[str, Any], tolerance: float = 1e-6) -> list[str]:
    """Differences between a ``lesson_summary`` row and the truth; empty when they agree."""
    problems: list[str] = []
    for name in _EXACT:
        if name in row and row[name] != getattr(expected, name):
            problems.append(
                f"{expected.lesson_id} {name}: expected {getattr(expected, name)!r}, got {row[name]!r}"
            )
    for name in _CLOSE:
        want, got = getattr(expected, name), row.get(name)
        if want is None or got is None:
            continue  # undefined in §7 for this lesson (e.g. no answers): storage may say 0 or NULL
        if abs(float(got) - want) > tolerance:
            problems.append(f"{expected.lesson_id} {name}: expected {want:.6f}, got {float(got):.6f}")
    return problems
