"""The state of one lesson: everything docs/DESIGN.md §7 needs to compute its summary, and nothing more.

Each field is kept in a form that does not depend on arrival order: the union of T segments, a
histogram of observations, the set of active students, the first attempt per (student, item),
the earliest STARTED and the latest ENDED. Together with the lesson's own
:class:`~stream_processors.dedup.SeenEvents` in the same value, a lesson fed the same events in
any order, with any duplicates, across any restart, yields the same summary.

Times are compared at millisecond precision, the precision of ClickHouse's DateTime64(3).
"""

from __future__ import annotations

from typing import Any

import orjson

from classtrace.codec import ms_to_ts
from classtrace.erasure import ErasureSet, anonymous_stand_in
from classtrace.identity import room_key
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from stream_processors.dedup import SeenEvents
from stream_processors.metrics.accuracy import FirstAttempts
from stream_processors.metrics.attention import AttentionHistogram
from stream_processors.metrics.participation import HAND_RAISED, participation_rate
from stream_processors.metrics.st_analysis import T_KINDS, add_interval, sample_count, st_result

_NAN = float("nan")


def _or_nan(value: float | None) -> float:
    return _NAN if value is None else value


__all__ = ["LessonState", "summary_fingerprint"]

_STARTED = pb.LessonLifecycle.PHASE_STARTED
_ENDED = pb.LessonLifecycle.PHASE_ENDED
_ANSWERED = pb.LearningTrace.VERB_ANSWERED
_NO_TIME = -1


class LessonState:
    """Order-independent aggregates of one lesson plus the events already counted."""

    __slots__ = (
        "_students_json",
        "answers",
        "attention",
        "classroom_id",
        "end",
        "hand_raises",
        "key",
        "latest_ms",
        "lesson_id",
        "meta",
        "partition",
        "room",
        "school_id",
        "seen",
        "start",
        "students",
        "t_union",
    )

    def __init__(self, classroom_id: str, lesson_id: str, school_id: str = "") -> None:
        self.classroom_id = classroom_id
        self.lesson_id = lesson_id
        self.school_id = school_id
        self.room = room_key(school_id, classroom_id)
        self.key = self.key_of(self.room, lesson_id)
        # (occurred_ms, event_id) of the earliest STARTED / latest ENDED, or None
        self.start: tuple[int, str] | None = None
        self.end: tuple[int, str] | None = None
        self.meta: dict[str, Any] = {"teacher_id": "", "subject": "", "grade": "", "enrolled": 0}
        self.latest_ms = _NO_TIME
        self.t_union: list[list[int]] = []
        self.attention = AttentionHistogram()
        self.students: set[str] = set()
        self._students_json: tuple[int, orjson.Fragment] | None = None  # (len, sorted as JSON)
        self.answers = FirstAttempts()
        self.hand_raises = 0
        self.seen = SeenEvents()
        self.partition = -1
        """The changelog partition of the lesson (its room's events partition), -1 until known."""

    # --- updates --------------------------------------------------------------------------------

    @staticmethod
    def key_of(room: str, lesson_id: str) -> str:
        """The lesson's table key: its classroom's :func:`~classtrace.identity.room_key` and its id.

        The school is part of it: lesson ids, like room numbers, repeat across schools.
        """
        return f"{room}/{lesson_id}"

    def count(self, device_id: str, seq: int, event_id: str, occurred: int) -> bool:
        """Take an event of this lesson (occurred in ms); False when it was a duplicate.

        On True the caller adds the event's payload with :meth:`add`.
        """
        if not self.seen.add(device_id, seq, event_id):
            return False
        self.latest_ms = max(self.latest_ms, occurred)
        return True

    def add(self, payload: str | None, event: pb.Event, occurred: int, occurred_ns: int) -> None:
        """Add a counted event's payload to the aggregate it feeds (heartbeats feed none)."""
        if payload == "trace":
            trace = event.trace
            self.add_trace(trace.correct, trace.student_id, trace.verb, trace.item_id, occurred_ns,
                           event.event_id)  # fmt: skip
        elif payload == "observation":
            observation = event.observation
            self.attention.add(observation.attentive, observation.present)
        elif payload == "teaching":
            teaching = event.teaching
            self.add_teaching(teaching.kind, occurred, teaching.duration_ms)
        elif payload == "lesson":
            life = event.lesson
            self.add_lifecycle(life.phase, occurred, event.event_id, life.teacher_id, life.subject,
                               life.grade, life.enrolled)  # fmt: skip

    def add_trace(
        self,
        correct: bool,
        student_id: str,
        verb: int,
        item_id: str,
        occurred_ns: int,
        event_id: str,
    ) -> None:
        """A LearningTrace: participation, first attempts of ANSWERED, HAND_RAISED count."""
        self.students.add(student_id)
        if verb == _ANSWERED:
            # ``correct`` is an optional bool: unset reads as False, i.e. "not correct".
            self.answers.offer(student_id, item_id, occurred_ns, event_id, correct)
        elif verb == HAND_RAISED:
            self.hand_raises += 1

    def add_teaching(self, kind: int, occurred: int, duration_ms: int) -> None:
        """A TeachingBehavior segment: T-set kinds join the union of T time."""
        if kind in T_KINDS:
            add_interval(self.t_union, occurred, occurred + duration_ms)

    def add_lifecycle(
        self,
        phase: int,
        occurred: int,
        event_id: str,
        teacher_id: str,
        subject: str,
        grade: str,
        enrolled: int,
    ) -> None:
        """STARTED/ENDED: the earliest STARTED (with its metadata) and the latest ENDED win."""
        key = (occurred, event_id)
        if phase == _STARTED:
            if self.start is None or key < self.start:
                self.start = key
                self.meta = {
                    "teacher_id": teacher_id, "subject": subject, "grade": grade, "enrolled": enrolled
                }  # fmt: skip
        elif phase == _ENDED and (self.end is None or key > self.end):
            self.end = key

    # --- results --------------------------------------------------------------------------------

    @property
    def final(self) -> bool:
        """True once the lesson's ENDED has been seen (and its STARTED: a summary needs a start)."""
        return self.start is not None and self.end is not None

    def summary(self) -> ppb.LessonSummary | None:
        """The lesson's metrics (without computed_at/version), or None before its STARTED is seen.

        Final (ENDED seen): samples while t_k < end. Live: samples up to the latest event time.
        """
        if self.start is None:
            return None
        start_ms = self.start[0]
        if self.end is not None:
            n = sample_count(start_ms, self.end[0])
        else:
            n = sample_count(start_ms, max(self.latest_ms, start_ms), inclusive=True)
        st = st_result(start_ms, n, self.t_union)
        accuracy = self.answers.result()
        meta = self.meta
        out = ppb.LessonSummary(
            lesson_id=self.lesson_id,
            school_id=self.school_id,
            classroom_id=self.classroom_id,
            teacher_id=meta["teacher_id"],
            subject=meta["subject"],
            grade=meta["grade"],
            st_samples=st.samples,
            st_rt=st.st_rt,
            st_ch=st.st_ch,
            teaching_mode=st.mode,
            # NaN = "no value" (proto3 doubles have no unset): stored as NULL, so a lesson without
            # camera frames or answers is not averaged into portraits as 0 %.
            attention_rate=_or_nan(self.attention.rate()),
            participation_rate=(
                participation_rate(len(self.students), meta["enrolled"]) if meta["enrolled"] else _NAN
            ),
            answers=accuracy.answers,
            answer_accuracy=accuracy.accuracy if accuracy.answers else _NAN,
            hand_raises=self.hand_raises,
            final=self.end is not None,
            st_codes=st.codes,
            enrolled=meta["enrolled"],
        )
        ms_to_ts(start_ms, out.started_at)
        if self.end is not None:
            ms_to_ts(self.end[0], out.ended_at)
        return out

    def anonymise(self, erased: ErasureSet) -> bool:
        """Replace erased people by stand-ins (docs/ERASURE.md); True if the state changed.

        An erased student becomes :func:`~classtrace.erasure.anonymous_stand_in`, the id a replay
        of the scrubbed events gives them, so the lesson's counts and its summary stay the same
        live and after a replay. An erased teacher's id is blanked.
        """
        changed = False
        for student in sorted(self.students):
            subject = erased.subject_of("student", self.school_id, student)
            if subject is not None:
                stand_in = anonymous_stand_in(subject, self.school_id, self.lesson_id)
                self.students.discard(student)
                self.students.add(stand_in)
                self.answers.rename_student(student, stand_in)
                self._students_json = None
                changed = True
        if erased.subject_of("teacher", self.school_id, self.meta["teacher_id"]) is not None:
            self.meta = {**self.meta, "teacher_id": ""}
            changed = True
        return changed

    # --- persistence ----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The table value: compact JSON, deterministic for equal states (orjson sorts the keys)."""
        return orjson.dumps(
            {
                "v": 1,
                "c": self.classroom_id,
                "l": self.lesson_id,
                "s": self.school_id,
                "start": self.start,
                "end": self.end,
                "meta": self.meta,
                "latest": self.latest_ms,
                "t": self.t_union,
                "att": self.attention.to_list(),
                "stu": self._students_fragment(),
                "ans": self.answers.to_json(),
                "hand": self.hand_raises,
                "seen": self.seen.to_obj(),
                "p": self.partition,
            },
            option=orjson.OPT_SORT_KEYS,
        )

    def _students_fragment(self) -> orjson.Fragment:
        """The students, sorted, as JSON; kept while their number stays (the set only grows)."""
        cache = self._students_json
        if cache is None or cache[0] != len(self.students):
            cache = self._students_json = (
                len(self.students),
                orjson.Fragment(orjson.dumps(sorted(self.students))),
            )
        return cache[1]

    @classmethod
    def from_bytes(cls, raw: bytes) -> LessonState:
        """Inverse of :meth:`to_bytes`."""
        obj = orjson.loads(raw)
        state = cls(obj["c"], obj["l"], obj["s"])
        state.start = tuple(obj["start"]) if obj["start"] else None  # type: ignore[assignment]
        state.end = tuple(obj["end"]) if obj["end"] else None  # type: ignore[assignment]
        state.meta = obj["meta"]
        state.latest_ms = obj["latest"]
        state.t_union = obj["t"]
        state.attention = AttentionHistogram.from_list(obj["att"])
        state.students = set(obj["stu"])
        state.answers = FirstAttempts({k: (v[0], v[1], v[2]) for k, v in obj["ans"].items()})
        state.hand_raises = obj["hand"]
        state.seen = SeenEvents.from_obj(obj["seen"])
        state.partition = obj.get("p", -1)
        return state


def summary_fingerprint(summary: ppb.LessonSummary) -> bytes:
    """The summary's content without computed_at and version: equal fingerprints, equal metrics."""
    copy = ppb.LessonSummary()
    copy.CopyFrom(summary)
    copy.ClearField("computed_at")
    copy.ClearField("version")
    return copy.SerializeToString(deterministic=True)
