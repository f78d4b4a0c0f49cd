"""The control run of a fault test: this run's records replayed once, uninterrupted, in process.

The load's events carry wall-clock times and a per-run school, so a second ``classtrace up`` with
the same seed would not produce the same lessons. The control is therefore the same records: every
record of ``classtrace.events.v1`` keyed to this run's school is read back from the broker (gateway
re-publications included, as the worker saw them) and fed, in partition order, to one
:class:`~stream_processors.processor.Processor` over in-memory tables that nothing kills. Its
latest summary per lesson must equal ``lesson_summary FINAL`` of the faulted stack, field by field
(``version`` and ``computed_at`` aside: they count re-emissions and wall time).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from classtrace.kafka import TopicPartition, make_consumer
from classtrace.signing import RecordKey
from classtrace.topics import EVENTS
from classtrace.v1 import pipeline_pb2 as ppb

__all__ = ["control_summaries", "stack_summaries", "summaries_settled"]

Fingerprint = tuple[Any, ...]
Query = Callable[[str, Mapping[str, Any]], list[tuple[Any, ...]]]

_SQL = """
SELECT lesson_id, st_samples, st_codes, toString(teaching_mode), answers, hand_raises, enrolled, final,
       round(st_rt, 6), round(st_ch, 6), round(attention_rate, 6), round(participation_rate, 6),
       round(answer_accuracy, 6)
FROM classtrace.lesson_summary FINAL WHERE school_id = {s:String} ORDER BY lesson_id
"""


def _r(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


def _fingerprint(s: ppb.LessonSummary) -> Fingerprint:
    """What the sink stores of a summary (NaN and the 'no denominator' cases as NULL, sinks/rows.py)."""
    return (
        s.lesson_id, s.st_samples, s.st_codes, s.teaching_mode, s.answers, s.hand_raises, s.enrolled,
        bool(s.final), round(s.st_rt, 6), round(s.st_ch, 6), _r(s.attention_rate),
        _r(s.participation_rate) if s.enrolled else None, _r(s.answer_accuracy) if s.answers else None,
    )  # fmt: skip


def stack_summaries(query: Query, school: str) -> dict[str, Fingerprint]:
    """lesson_id → fingerprint of ``lesson_summary FINAL`` for the run's school."""
    rows = query(_SQL, {"s": school})
    return {
        str(r[0]): (
            *(str(r[0]), int(r[1]), str(r[2]), str(r[3]), int(r[4]), int(r[5]), int(r[6]), bool(r[7])),
            *(None if v is None else float(v) for v in r[8:]),
        )
        for r in rows
    }


def summaries_settled(query: Query, school: str, lag: Callable[[], int], timeout_s: float = 120.0) -> bool:
    """Wait until the worker has committed everything and the summaries stopped changing (3 s)."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Fingerprint] | None = None
    while time.monotonic() < deadline:
        now = stack_summaries(query, school) if lag() == 0 else None
        if now is not None and now == last:
            return True
        last = now
        time.sleep(3.0)
    return False


def _records(bootstrap: str, options: Mapping[str, str], prefix: bytes) -> Iterator[Any]:
    """Every record of the events topic whose key starts with ``prefix``, partition by partition."""
    from stream_processors.processor import Record

    consumer = make_consumer(
        bootstrap, "classtrace-loadtest-control", options, **{"enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(EVENTS, timeout=10).topics[EVENTS].partitions
        for p in sorted(partitions):
            low = consumer.get_watermark_offsets(TopicPartition(EVENTS, p), timeout=10)[0]
            consumer.assign([TopicPartition(EVENTS, p, low)])
            # Read until 3 s of silence, not to the high watermark: Tansu's can trail the log's end
            # by a batch (loadtests/soak.py), and a missed last record changes the last lesson.
            while (msg := consumer.poll(3.0)) is not None:
                if msg.error() is None and (msg.key() or b"").startswith(prefix):
                    yield Record(EVENTS, p, msg.offset() or 0, msg.key(), msg.value(), msg.headers())
    finally:
        consumer.close()


class _Collect:
    """The processor's outputs: the latest summary per lesson."""

    def __init__(self) -> None:
        self.latest: dict[str, ppb.LessonSummary] = {}

    def metrics(self, key: bytes, value: bytes) -> None:
        for s in ppb.MetricBatch.FromString(value).summaries:
            self.latest[s.lesson_id] = s

    def alerts(self, key: bytes, value: bytes) -> None:
        pass

    def dead_letter(self, key: bytes | None, value: bytes) -> None:
        pass


class _Table:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value

    def iter_keys(self) -> Iterator[str]:
        return iter(list(self.data))


def control_summaries(
    bootstrap: str, options: Mapping[str, str], school: str, record_key: RecordKey | None
) -> tuple[dict[str, Fingerprint], int]:
    """(lesson_id → fingerprint, records replayed) of one uninterrupted processor over the run."""
    from classtrace.identity import room_key
    from stream_processors.processor import Processor, ProcessorConfig

    out = _Collect()
    proc = Processor(
        _Table(), _Table(), _Table(), out, ProcessorConfig(summary_interval_s=0.0), record_key=record_key
    )
    prefix = room_key(school, "").encode()
    n = 0
    batch: list[Any] = []
    for record in _records(bootstrap, options, prefix):
        batch.append(record)
        n += 1
        if len(batch) >= 500:
            proc.process_records(batch)
            batch = []
    proc.process_records(batch)
    proc.tick()
    return {lesson: _fingerprint(s) for lesson, s in out.latest.items()}, n
