"""Erasure in the worker: the person leaves its state, the lesson's figures stay (docs/ERASURE.md)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from classtrace.erasure import Erasure, ErasureSet, anonymous_stand_in, subject_digest
from classtrace.v1 import events_pb2 as pb
from stream_processors.lesson_state import summary_fingerprint
from stream_processors.processor import Processor, ProcessorConfig, Record
from tests.helpers.lessons import chunks, recorded_lesson
from tests.helpers.worker_tables import DictTable, Sink

KEY = b"sch-0001/room-101"
LESSON = recorded_lesson(seed=5)
STUDENTS = sorted({e.trace.student_id for e in LESSON if e.WhichOneof("payload") == "trace"})


class Ledger:
    """What the worker reads the ledger through (classtrace.erasure.ErasureFollower's shape)."""

    def __init__(self) -> None:
        self.known = ErasureSet()
        self.queued: list[Erasure] = []

    def drain(self) -> list[Erasure]:
        new = [e for e in self.queued if self.known.add(e)]
        self.queued = []
        return new


def run(events: list[pb.Event], ledger: Ledger | None = None, erase_after: int | None = None,
        erasures: tuple[Erasure, ...] = ()) -> tuple[Processor, DictTable, Sink]:  # fmt: skip
    tables = (DictTable(), DictTable(), DictTable())
    sink = Sink()
    proc = Processor(*tables, sink, ProcessorConfig(summary_interval_s=0.0), erasures=ledger)
    values = chunks(events, 25)
    assert erase_after is None or erase_after < len(values)
    for i, value in enumerate(values):
        if ledger is not None and i == erase_after:
            ledger.queued.extend(erasures)
        proc.process_records([Record("classtrace.events.v1", 0, i, KEY, value)])
    proc.tick()
    return proc, tables[0], sink


def lesson_bytes(table: DictTable) -> bytes:
    (value,) = [table.get(k) for k in table.iter_keys()]
    assert value is not None
    return value


def erasure(kind: str, person: str) -> Erasure:
    return Erasure.new(kind, "sch-0001", person, requested_ms=0)  # type: ignore[arg-type]


def test_a_student_erased_mid_lesson_leaves_the_state_and_the_summary_stays():
    _, plain_table, plain = run(LESSON)
    gone = STUDENTS[3]
    ledger = Ledger()
    _, table, sink = run(LESSON, ledger, erase_after=10, erasures=(erasure("student", gone),))
    assert gone.encode() not in lesson_bytes(table)  # the changelog value names them no more
    assert gone.encode() in lesson_bytes(plain_table)
    assert summary_fingerprint(sink.final_summary()) == summary_fingerprint(plain.final_summary())


def test_live_erasure_and_a_replay_after_it_leave_the_same_state():
    """The stand-in is what a replay of the scrubbed events gives: both paths agree to the byte."""
    gone = erasure("student", STUDENTS[0])
    live = Ledger()
    _, live_table, live_sink = run(LESSON, live, erase_after=4, erasures=(gone,))
    replay = Ledger()
    replay.queued.append(gone)
    _, replay_table, replay_sink = run(LESSON, replay, erase_after=None)
    assert lesson_bytes(live_table) == lesson_bytes(replay_table)
    stand_in = anonymous_stand_in(gone.subject, "sch-0001", "lesson-0001")
    assert stand_in.encode() in lesson_bytes(live_table)
    assert summary_fingerprint(live_sink.final_summary()) == summary_fingerprint(replay_sink.final_summary())


def test_an_erased_teacher_is_blanked_in_state_and_in_the_next_summary():
    ledger = Ledger()
    _, table, sink = run(LESSON, ledger, erase_after=10, erasures=(erasure("teacher", "t-0042"),))
    assert b"t-0042" not in lesson_bytes(table)
    assert sink.final_summary().teacher_id == ""
    other = Ledger()
    _, _, kept = run(LESSON, other, erase_after=10, erasures=(erasure("teacher", "t-0099"),))
    assert kept.final_summary().teacher_id == "t-0042"


def test_the_same_id_at_another_school_is_not_erased():
    ledger = Ledger()
    elsewhere = Erasure.new("student", "sch-0002", STUDENTS[1], requested_ms=0)
    _, table, _ = run(LESSON, ledger, erase_after=2, erasures=(elsewhere,))
    assert STUDENTS[1].encode() in lesson_bytes(table)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(STUDENTS), min_size=1, max_size=5, unique=True), st.randoms())
def test_scrub_drop_removes_exactly_the_erased_students_traces(gone, rnd: random.Random):
    erased = ErasureSet(erasure("student", s) for s in gone)
    events = [pb.Event.FromString(e.SerializeToString()) for e in LESSON]
    rnd.shuffle(events)
    batch = pb.EventBatch(events=events)
    erased.scrub(batch.events, "drop")
    kept = list(batch.events)
    assert not any(e.trace.student_id in gone for e in kept)
    assert len(kept) == sum(1 for e in LESSON if e.trace.student_id not in gone)
    assert subject_digest("student", "sch-0001", gone[0]) in {e.subject for e in erased._subjects.values()}
