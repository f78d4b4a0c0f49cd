"""Kafka records → columnar blocks for the ClickHouse tables of docs/DESIGN.md §6 (the sink's hot path).

A :class:`Block` holds one table's rows as one Python list per column, because clickhouse-connect
serialises column-oriented data 3–5× faster than rows (docs/FIELD-NOTES.md), and because an EventBatch
record maps onto whole-column operations: the envelope columns are list comprehensions over the
record's events, the payload columns are pre-filled with their defaults (``[d] * n``, C speed)
and only the cells of the payload an event actually carries are overwritten.

Each row also keeps the protobuf message it came from and where it was read (topic, partition,
offset): both are references, not copies, and they are what a row ClickHouse refuses is
dead-lettered with (:mod:`sinks.clickhouse_writer`).

Events are not validated again here: every writer of classtrace.events.v1 (gateway, SDK)
validates first (:mod:`classtrace.validation`), so the sink trusts what decodes. It only must not
crash on what it did not expect: an enum value it has no name for is stored as ``''`` (as the
protobuf path's view does), and a value ClickHouse refuses is isolated by the writer's bisection
and dead-lettered (:mod:`sinks.clickhouse_writer`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from classtrace import deadletters
from classtrace.access import ACCESS_LOG_COLUMNS, AccessRecord
from classtrace.codec import ts_to_ms
from classtrace.deadletters import MAX_RAW_BYTES
from classtrace.schema import ALERT_COLUMNS as _ALERT_TYPES
from classtrace.schema import DEVICE_STATUS_COLUMNS as _DEVICE_STATUS_TYPES
from classtrace.schema import EVENT_INSERT_COLUMNS
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb

__all__ = [
    "ACCESS_LOG_COLUMNS",
    "ALERT_COLUMNS",
    "DEAD_LETTER_COLUMNS",
    "DEVICE_STATUS_COLUMNS",
    "EVENT_COLUMNS",
    "LESSON_SUMMARY_COLUMNS",
    "MAX_RAW_BYTES",
    "METRIC_POINT_COLUMNS",
    "TABLE_COLUMNS",
    "Block",
    "Source",
    "add_access_record",
    "add_alert",
    "add_dead_letter",
    "add_dead_letter_record",
    "add_event_batch",
    "add_metric_batch",
    "new_block",
    "refusal_code",
]

Source = tuple[str, int, int]
"""Where a row was read: (topic, partition, offset); ("", -1, -1) when not from Kafka."""

EVENT_COLUMNS: tuple[str, ...] = EVENT_INSERT_COLUMNS
LESSON_SUMMARY_COLUMNS: tuple[str, ...] = (
    "lesson_id", "school_id", "classroom_id", "teacher_id", "subject", "grade", "started_at",
    "ended_at", "st_samples", "st_rt", "st_ch", "st_codes", "teaching_mode", "attention_rate",
    "participation_rate", "answers", "answer_accuracy", "hand_raises", "enrolled", "computed_at",
    "final", "version",
)  # fmt: skip
METRIC_POINT_COLUMNS: tuple[str, ...] = (
    "window_start", "window_end", "school_id", "classroom_id", "lesson_id", "metric", "value",
)  # fmt: skip
DEAD_LETTER_COLUMNS: tuple[str, ...] = (
    "received_at", "source", "error", "raw", "event_id", "topic", "partition", "offset", "school_id",
    "field", "raw_sha256", "raw_length", "raw_kept",
)  # fmt: skip
DEVICE_STATUS_COLUMNS: tuple[str, ...] = tuple(name for name, _ in _DEVICE_STATUS_TYPES)
ALERT_COLUMNS: tuple[str, ...] = tuple(name for name, _ in _ALERT_TYPES)
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": EVENT_COLUMNS,
    "lesson_summary": LESSON_SUMMARY_COLUMNS,
    "metric_points": METRIC_POINT_COLUMNS,
    "dead_letters": DEAD_LETTER_COLUMNS,
    "access_log": ACCESS_LOG_COLUMNS,
    "device_status": DEVICE_STATUS_COLUMNS,
    "alerts": ALERT_COLUMNS,
}

SINK_SOURCE = "sink"


@dataclass
class Block:
    """One table's pending rows: a list per column, plus each row's message and Kafka source."""

    table: str
    columns: dict[str, list[Any]]
    messages: list[Message | bytes] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def data(self) -> list[list[Any]]:
        """The column lists in :attr:`column_names` order (clickhouse-connect column-oriented)."""
        return list(self.columns.values())

    def take(self, start: int, stop: int) -> Block:
        """Rows ``[start, stop)`` as a new block (for bisecting a rejected insert)."""
        return Block(
            self.table,
            {name: col[start:stop] for name, col in self.columns.items()},
            self.messages[start:stop],
            self.sources[start:stop],
        )

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a dict (for logs and tests; not for the hot path)."""
        return {name: col[i] for name, col in self.columns.items()}

    def clear(self) -> None:
        for col in self.columns.values():
            col.clear()
        self.messages.clear()
        self.sources.clear()


def new_block(table: str) -> Block:
    """An empty block with the insert columns of ``table``."""
    return Block(table, {name: [] for name in TABLE_COLUMNS[table]})


# --- enums: stored by their short name (classtrace.schema) ---------------------------------------


def _short_names(items: Sequence[tuple[str, int]], prefix: str) -> dict[int, str]:
    return {number: ("" if number == 0 else name.removeprefix(prefix)) for name, number in items}


_DEVICE_KIND = _short_names(pb.DeviceKind.items(), "DEVICE_KIND_")
_PHASE = _short_names(pb.LessonLifecycle.Phase.items(), "PHASE_")
_TEACHING_KIND = _short_names(pb.TeachingBehavior.Kind.items(), "KIND_")
_BEHAVIOR = _short_names(pb.ClassObservation.Behavior.items(), "BEHAVIOR_")
_VERB = _short_names(pb.LearningTrace.Verb.items(), "VERB_")
_CONTEXT = _short_names(pb.LearningTrace.Context.items(), "CONTEXT_")

# Payload columns and the default a row keeps when its event carries another payload.
_PAYLOAD_DEFAULTS: dict[str, Any] = {
    "lesson_phase": "", "teacher_id": "", "subject": "", "grade": "", "enrolled": 0,
    "teaching_kind": "", "duration_ms": 0, "confidence": 0.0,
    "present": 0, "attentive": 0, "behavior_counts": {},
    "student_id": "", "verb": "", "item_id": "", "knowledge_points": [], "correct": None,
    "score": 0.0, "latency_ms": 0, "context": "",
    "battery_pct": 0.0, "cpu_pct": 0.0, "spool_depth": 0, "firmware": "", "interval_s": 0,
}  # fmt: skip
_ENVELOPE = tuple(c for c in EVENT_COLUMNS if c not in _PAYLOAD_DEFAULTS)
assert set(_ENVELOPE) == {
    "event_id", "kind", "school_id", "classroom_id", "device_id", "lesson_id", "occurred_at",
    "received_at", "seq", "device_kind",
}, _ENVELOPE  # fmt: skip


# --- events ---------------------------------------------------------------------------------------


def add_event_batch(batch: pb.EventBatch, source: Source, now_s: float, events: Block) -> int:
    """Append ``batch``'s events to ``events`` as they are (trusted: see the module docstring).

    ``now_s`` (epoch seconds) stamps ``received_at`` on events that reach Kafka without one.
    Returns the number of events added.
    """
    ok = list(batch.events)
    n = len(ok)
    if not n:
        return 0
    now_ms = int(now_s * 1000)
    cols = events.columns
    cols["event_id"].extend([e.event_id for e in ok])
    cols["school_id"].extend([e.school_id for e in ok])
    cols["classroom_id"].extend([e.classroom_id for e in ok])
    cols["device_id"].extend([e.device_id for e in ok])
    cols["lesson_id"].extend([e.lesson_id for e in ok])
    occurred = [e.occurred_at for e in ok]
    cols["occurred_at"].extend([ts_to_ms(t) for t in occurred])
    stamped = [e.received_at for e in ok]
    received = [ts_to_ms(t) for t in stamped]
    cols["received_at"].extend([r if r > 0 else now_ms for r in received])
    cols["seq"].extend([e.seq for e in ok])
    cols["device_kind"].extend([_DEVICE_KIND.get(e.device_kind, "") for e in ok])
    kinds = [e.WhichOneof("payload") for e in ok]
    cols["kind"].extend([k or "" for k in kinds])
    base = len(events.sources)
    for name, default in _PAYLOAD_DEFAULTS.items():
        cols[name].extend([default] * n)
    events.messages.extend(ok)
    events.sources.extend([source] * n)
    _fill_payloads(ok, kinds, base, cols)
    return n


def _fill_payloads(
    ok: list[pb.Event], kinds: Sequence[str | None], base: int, cols: dict[str, list[Any]]
) -> None:
    """Overwrite the default cells of each event's own payload (one pass, one branch per event).

    The column lists are bound to locals first: this loop runs once per event.
    """
    present, attentive, counts = cols["present"], cols["attentive"], cols["behavior_counts"]
    student, verb, item, points = cols["student_id"], cols["verb"], cols["item_id"], cols["knowledge_points"]
    correct, score, latency, context = cols["correct"], cols["score"], cols["latency_ms"], cols["context"]
    t_kind, teacher, duration, confidence = (
        cols["teaching_kind"], cols["teacher_id"], cols["duration_ms"], cols["confidence"],
    )  # fmt: skip
    battery, cpu, spool, firmware, interval = (
        cols["battery_pct"], cols["cpu_pct"], cols["spool_depth"], cols["firmware"], cols["interval_s"],
    )  # fmt: skip
    phase, subject, grade, enrolled = cols["lesson_phase"], cols["subject"], cols["grade"], cols["enrolled"]
    behavior_name, verb_name, context_name, kind_name, phase_name = (
        _BEHAVIOR,
        _VERB,
        _CONTEXT,
        _TEACHING_KIND,
        _PHASE,
    )
    j = base
    for event, kind in zip(ok, kinds, strict=True):
        if kind == "observation":
            obs = event.observation
            present[j] = obs.present
            attentive[j] = obs.attentive
            if obs.counts:
                counts[j] = {behavior_name.get(c.behavior, ""): c.count for c in obs.counts}
        elif kind == "trace":
            tr = event.trace
            student[j] = tr.student_id
            verb[j] = verb_name.get(tr.verb, "")
            item[j] = tr.item_id
            if tr.knowledge_points:
                points[j] = list(tr.knowledge_points)
            if tr.HasField("correct"):
                correct[j] = tr.correct
            score[j] = tr.score
            latency[j] = tr.latency_ms
            context[j] = context_name.get(tr.context, "")
        elif kind == "teaching":
            te = event.teaching
            t_kind[j] = kind_name.get(te.kind, "")
            teacher[j] = te.teacher_id
            duration[j] = te.duration_ms
            confidence[j] = te.confidence
        elif kind == "heartbeat":
            hb = event.heartbeat
            battery[j] = hb.battery_pct
            cpu[j] = hb.cpu_pct
            spool[j] = hb.spool_depth
            firmware[j] = hb.firmware
            interval[j] = hb.interval_s
        elif kind == "lesson":
            le = event.lesson
            phase[j] = phase_name.get(le.phase, "")
            teacher[j] = le.teacher_id
            subject[j] = le.subject
            grade[j] = le.grade
            enrolled[j] = le.enrolled
        j += 1


# --- metrics --------------------------------------------------------------------------------------


def _nullable(value: float) -> float | None:
    """proto3 doubles have no 'unset': the worker sends NaN for 'no value' (stored as NULL)."""
    return None if math.isnan(value) else value


def add_metric_batch(
    batch: ppb.MetricBatch, source: Source, summaries: Block, points: Block, devices: Block | None = None
) -> int:
    """Append a MetricBatch's lesson summaries, metric points and (given ``devices``) device state
    changes; returns the rows added.

    Of ``devices`` (DeviceStatus) only the entries the worker marked ``changed`` are rows of
    ``device_status``; the others are live state for the dashboard. Rates with no denominator are
    NULL, not 0: ``participation_rate`` when ``enrolled`` = 0, ``answer_accuracy`` when
    ``answers`` = 0, any rate sent as NaN.
    """
    cols = summaries.columns
    for s in batch.summaries:
        cols["lesson_id"].append(s.lesson_id)
        cols["school_id"].append(s.school_id)
        cols["classroom_id"].append(s.classroom_id)
        cols["teacher_id"].append(s.teacher_id)
        cols["subject"].append(s.subject)
        cols["grade"].append(s.grade)
        cols["started_at"].append(ts_to_ms(s.started_at))
        cols["ended_at"].append(ts_to_ms(s.ended_at) if s.HasField("ended_at") else None)
        cols["st_samples"].append(s.st_samples)
        cols["st_rt"].append(s.st_rt)
        cols["st_ch"].append(s.st_ch)
        cols["st_codes"].append(s.st_codes)
        cols["teaching_mode"].append(s.teaching_mode)
        cols["attention_rate"].append(_nullable(s.attention_rate))
        cols["participation_rate"].append(_nullable(s.participation_rate) if s.enrolled else None)
        cols["answers"].append(s.answers)
        cols["answer_accuracy"].append(_nullable(s.answer_accuracy) if s.answers else None)
        cols["hand_raises"].append(s.hand_raises)
        cols["enrolled"].append(s.enrolled)
        cols["computed_at"].append(ts_to_ms(s.computed_at))
        cols["final"].append(s.final)
        cols["version"].append(s.version)
        summaries.messages.append(s)
        summaries.sources.append(source)
    pcols = points.columns
    for p in batch.points:
        pcols["window_start"].append(ts_to_ms(p.window_start))
        pcols["window_end"].append(ts_to_ms(p.window_end))
        pcols["school_id"].append(p.school_id)
        pcols["classroom_id"].append(p.classroom_id)
        pcols["lesson_id"].append(p.lesson_id)
        pcols["metric"].append(p.metric)
        pcols["value"].append(p.value)
        points.messages.append(p)
        points.sources.append(source)
    changes = _add_device_changes(batch.devices, source, devices) if devices is not None else 0
    return len(batch.summaries) + len(batch.points) + changes


def _add_device_changes(statuses: Sequence[ppb.DeviceStatus], source: Source, devices: Block) -> int:
    """Append the device_status rows of the statuses that are state changes; returns how many."""
    cols, added = devices.columns, 0
    for d in statuses:
        if not d.changed:
            continue
        cols["school_id"].append(d.school_id)
        cols["classroom_id"].append(d.classroom_id)
        cols["device_id"].append(d.device_id)
        cols["device_kind"].append(_DEVICE_KIND.get(d.device_kind, ""))
        cols["state"].append("offline" if d.offline else "online")
        cols["at"].append(ts_to_ms(d.changed_at))
        cols["last_heartbeat"].append(ts_to_ms(d.last_heartbeat))
        cols["interval_s"].append(d.interval_s)
        cols["battery_pct"].append(d.battery_pct)
        cols["spool_depth"].append(d.spool_depth)
        devices.messages.append(d)
        devices.sources.append(source)
        added += 1
    return added


def add_alert(alert: ppb.Alert, source: Source, alerts: Block) -> None:
    """Append one alert (raised or cleared) as an ``alerts`` row; ``cleared_at`` NULL while raised."""
    cols = alerts.columns
    cols["alert_id"].append(alert.alert_id)
    cols["kind"].append(alert.kind)
    cols["state"].append(alert.state)
    cols["school_id"].append(alert.school_id)
    cols["classroom_id"].append(alert.classroom_id)
    cols["lesson_id"].append(alert.lesson_id)
    cols["device_id"].append(alert.device_id)
    cols["raised_at"].append(ts_to_ms(alert.raised_at))
    cols["cleared_at"].append(ts_to_ms(alert.cleared_at) if alert.HasField("cleared_at") else None)
    cols["value"].append(alert.value)
    cols["threshold"].append(alert.threshold)
    cols["version"].append(alert.version)
    alerts.messages.append(alert)
    alerts.sources.append(source)


# --- dead letters ---------------------------------------------------------------------------------


def add_dead_letter(
    dead: Block,
    now_s: float,
    error: str,
    raw: bytes,
    source: Source,
    *,
    event: pb.Event | None = None,
    keep_raw: bool = False,
) -> None:
    """Append a dead letter the sink itself found (undecodable record, refused row).

    Built by :func:`classtrace.deadletters.for_record`: ``error`` names the failure, the bytes (or
    the refused ``event``, its student_id redacted) are kept as a digest and a length.
    """
    topic, partition, offset = source
    letter = deadletters.for_record(
        raw,
        error,
        source=SINK_SOURCE,
        received_ns=int(now_s * 1e9),
        topic=topic,
        partition=partition,
        offset=offset,
        event=event,
        keep_raw=keep_raw,
    )
    _append_dead_letter(dead, letter, source)


def add_dead_letter_record(
    letter: ppb.DeadLetter, source: Source, dead: Block, *, keep_raw: bool = False
) -> None:
    """Append a DeadLetter record of classtrace.deadletter.v1 (rejected upstream).

    Scrubbed first (:func:`classtrace.deadletters.scrub`), so a letter from an older writer
    leaves its raw bytes behind unless the operator keeps them. Its own topic/partition/offset
    name where the rejected data was found; the deadletter record's location is not stored.
    """
    _append_dead_letter(dead, deadletters.scrub(letter, keep_raw=keep_raw), source)


_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")
_CONSTRAINT = re.compile(r"Constraint `(\w+)`")


def refusal_code(reason: str) -> str:
    """The error name of a ClickHouse refusal (``VIOLATED_CONSTRAINT``), not its text.

    ClickHouse quotes the offending value in the text ("Cannot parse '…' as UUID"), and a refused
    row may hold what a writer should never have sent; the name says which rule it broke.
    """
    names = _ERROR_NAME.findall(reason)
    name = names[-1] if names else "unnamed error"
    constraint = _CONSTRAINT.search(reason)  # its name is the schema's, never the row's
    return f"{name} {constraint.group(1)}" if constraint else name


def _append_dead_letter(dead: Block, letter: ppb.DeadLetter, source: Source) -> None:
    cols = dead.columns
    cols["received_at"].append(ts_to_ms(letter.received_at))
    cols["source"].append(letter.source)
    cols["error"].append(letter.error)
    cols["raw"].append(b"")  # a key column, so no TTL: kept bytes go to raw_kept (7 days, 0012)
    cols["event_id"].append(letter.event_id)
    own = bool(letter.topic)
    cols["topic"].append(letter.topic if own else "")
    cols["partition"].append(letter.partition if own else -1)
    cols["offset"].append(letter.offset if own else -1)
    cols["school_id"].append(letter.school_id)
    cols["field"].append(letter.field)
    cols["raw_sha256"].append(letter.raw_sha256)
    cols["raw_length"].append(letter.raw_length)
    cols["raw_kept"].append(letter.raw)
    dead.messages.append(letter)
    dead.sources.append(source)


# --- access log -----------------------------------------------------------------------------------


def add_access_record(record: AccessRecord, raw: bytes, source: Source, access: Block) -> None:
    """Append one access record (its values come from :meth:`AccessRecord.row`, their one home)."""
    for column, value in zip(ACCESS_LOG_COLUMNS, record.row(), strict=True):
        access.columns[column].append(value)
    access.messages.append(raw)
    access.sources.append(source)
