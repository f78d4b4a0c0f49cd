"""Dead letters keep no raw identifier (issue 17): not in their bytes, not in the logs around them.

Covered end to end through the code that writes them: the gateway's verdict (``judge``), the
worker's processor and the sink's rows, plus the per-request cap and the free-text bounds.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classtrace import deadletters
from classtrace.errors import ValidationError
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from classtrace.validation import MAX_KNOWLEDGE_POINTS, MAX_TEXT, check_event
from producers.gateway.auth import Binding
from producers.gateway.ingest import judge
from sinks.batcher import Batch, SinkTopics
from sinks.metrics import sink_metrics
from sinks.rows import add_dead_letter_record, new_block
from stream_processors.processor import Processor, Record
from tests.helpers.event_cases import make
from tests.helpers.strategies import NOW
from tests.helpers.worker_tables import DictTable, Sink

BINDING = Binding("sch-0001", "room-0203", "cam-01", pb.DEVICE_KIND_CAMERA)
NOW_NS = int(NOW * 1e9)

# What a device that failed to pseudonymise sends: a name, a student number, or both.
raw_student_ids = st.one_of(
    st.from_regex(r"[\u4e00-\u9fa5]{1,4}-?[0-9]{8,12}", fullmatch=True),
    st.from_regex(r"[0-9]{8,12}", fullmatch=True),
    st.from_regex(r"[A-Z]{1,3}-[0-9]{6,10}", fullmatch=True),
)
# Undecodable bytes: long and varied enough that finding them in a letter is never chance.
# An over-long varint first (no protobuf parser takes it), then anything.
undecodable = (
    st.binary(min_size=24, max_size=400).filter(lambda b: len(set(b)) >= 8).map(lambda b: b"\xff" * 11 + b)
)


def _trace(student_id: str, **envelope: str) -> pb.Event:
    event = make("trace")
    event.trace.student_id = student_id
    for name, value in envelope.items():
        setattr(event, name, value)
    return event


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=raw_student_ids,
    broken=st.sampled_from(["", "event_id", "occurred_at", "classroom_id"]),
    keep_raw=st.booleans(),
)
def test_a_raw_student_id_never_reaches_a_dead_letter_or_a_log(caplog, raw, broken, keep_raw):
    # The student_id rule need not be the one that failed: an earlier rule may win, and the raw
    # id must be replaced all the same. Without keep_raw no text value of the event is stored
    # at all, so a raw id sent in event_id is not kept either.
    event = _trace(raw)
    if broken == "event_id":
        event.event_id = "not-a-uuid" if keep_raw else raw
    elif broken == "occurred_at":
        event.occurred_at.seconds += 10 * 86_400
    elif broken == "classroom_id":
        event.classroom_id = "room-9"
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        verdict = judge(pb.EventBatch(events=[event]), BINDING, NOW_NS, keep_raw=keep_raw)
        sink_rows = new_block("dead_letters")
        for value in verdict.dead_letters:
            add_dead_letter_record(
                ppb.DeadLetter.FromString(value), ("dl", 0, 0), sink_rows, keep_raw=keep_raw
            )
    (value,) = verdict.dead_letters
    assert raw.encode() not in value
    assert raw not in repr(sink_rows.columns) and raw not in caplog.text
    letter = ppb.DeadLetter.FromString(value)
    redacted = deadletters.redact_event(event).SerializeToString()
    assert letter.raw_sha256 == hashlib.sha256(redacted).hexdigest() and letter.raw_length == len(redacted)
    if keep_raw:  # the operator asked for the event: it comes with the student_id replaced
        assert pb.Event.FromString(letter.raw).trace.student_id == deadletters.REDACTED_STUDENT_ID
    else:
        assert letter.raw == b""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=undecodable)
def test_undecodable_bytes_are_a_digest_and_a_length(caplog, raw):
    sink = Sink()
    proc = Processor(DictTable(), DictTable(), DictTable(), sink, clock=lambda: NOW)
    batch = Batch(SinkTopics(events="ev", metrics="mt", deadletter="dl"), sink_metrics())
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        proc.process_records([Record("classtrace.events.v1", 0, 5, b"room-0203", raw)])
        batch.add("ev", 0, 5, raw, now_s=NOW)
    (letter,) = sink.dead
    rows = batch.blocks["dead_letters"]
    assert len(rows) == 1
    for stored in (letter.SerializeToString(), repr(rows.columns).encode(), caplog.text.encode()):
        assert raw not in stored
    digest = hashlib.sha256(raw).hexdigest()
    assert (letter.raw_sha256, letter.raw_length) == (digest, len(raw))
    assert (rows.row(0)["raw_sha256"], rows.row(0)["raw_length"]) == (digest, len(raw))


def test_an_old_letter_with_raw_bytes_is_scrubbed_by_the_sink():
    old = ppb.DeadLetter(source="gateway", error="e", raw=b"20230117 zhang", event_id="20230117")
    rows = new_block("dead_letters")
    add_dead_letter_record(old, ("dl", 0, 0), rows)
    row = rows.row(0)
    assert (row["raw"], row["event_id"], row["raw_length"]) == (b"", "", 14)
    assert row["raw_sha256"] == hashlib.sha256(b"20230117 zhang").hexdigest()


def test_values_go_to_the_sender_not_to_the_dead_letter():
    event = make("trace")
    event.trace.item_id = "张三 q1"
    verdict = judge(pb.EventBatch(events=[event]), BINDING, NOW_NS)
    (item,) = verdict.rejected
    assert "张三 q1" in str(item["error"])  # the sender's own data, in the answer to the sender
    letter = ppb.DeadLetter.FromString(verdict.dead_letters[0])
    assert (letter.field, letter.error) == (
        "trace.item_id",
        "trace.item_id: must be 1–64 characters of [A-Za-z0-9_.:-]",
    )


def test_dead_letters_are_capped_per_request_with_a_summary():
    n = 250
    bad = [_trace(f"2023{i:06d}") for i in range(n - 50)] + [
        _trace("ps_x", event_id="nope") for _ in range(50)
    ]
    good = make("trace")
    verdict = judge(pb.EventBatch(events=[*bad, good]), BINDING, NOW_NS)
    assert verdict.accepted == 1
    assert [r["index"] for r in verdict.rejected] == list(range(n))  # the sender hears of every one
    letters = [ppb.DeadLetter.FromString(v) for v in verdict.dead_letters]
    cap = deadletters.MAX_PER_REQUEST
    assert len(letters) == cap + 1
    assert all(d.field == "trace.student_id" for d in letters[:cap])
    rest = letters[-1]
    assert rest.error.startswith(f"{n - cap} more rejected events of this request")
    assert f"trace.student_id ×{n - 50 - cap}" in rest.error and "event_id ×50" in rest.error
    assert rest.school_id == "sch-0001" and rest.raw == b"" and len(rest.raw_sha256) == 64


def test_a_summary_digest_tells_two_floods_apart():
    def flood(prefix: str) -> ppb.DeadLetter:
        bad = [_trace(f"{prefix}{i:08d}", event_id=str(uuid.uuid4())) for i in range(20)]
        return ppb.DeadLetter.FromString(judge(pb.EventBatch(events=bad), BINDING, NOW_NS).dead_letters[-1])

    one, other = flood("1"), flood("2")
    assert one.error == other.error and one.raw_sha256 != other.raw_sha256


@pytest.mark.parametrize(
    ("points", "field", "reason"),
    [
        (
            ["a"] * (MAX_KNOWLEDGE_POINTS + 1),
            "trace.knowledge_points",
            f"{MAX_KNOWLEDGE_POINTS + 1} entries exceed",
        ),
        (["ok", "x" * (MAX_TEXT + 1)], "trace.knowledge_points[1]", f"at most {MAX_TEXT} characters"),
        (["x" * 100_000], "trace.knowledge_points[0]", "got 100000"),
    ],
)
def test_knowledge_points_are_bounded(points, field, reason):
    event = make("trace")
    event.trace.knowledge_points.extend(points)
    error = check_event(event, NOW)
    assert isinstance(error, ValidationError) and error.field == field and reason in error.reason


def test_knowledge_points_within_the_bounds_pass():
    event = make("trace")
    event.trace.knowledge_points.extend(["一元二次方程-求根公式"] * MAX_KNOWLEDGE_POINTS + [])
    event.trace.knowledge_points[-1] = "k" * MAX_TEXT
    assert check_event(event, NOW) is None
