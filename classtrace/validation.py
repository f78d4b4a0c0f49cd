"""The event rules of docs/DESIGN.md §4: their one home, for every way onto classtrace.events.v1.

The SDK and the gateway validate every event here before it is written, so an event the edge
accepts is never judged differently elsewhere; readers of the topic (the worker, the sink) trust
it and guard only against bytes they cannot decode. Each rule is written once, in the reader of
the part of the event it is about: :func:`read_event` reads the envelope (ids, device_kind,
occurred_at), then hands the payload to its reader (``_read_trace``, ``_read_observation``, …).
:func:`read_batch` and the other entry points below only call read_event.

It runs on the ingest hot path: patterns are precompiled, ids already seen valid are memoised,
the cheap checks come first, nothing is built for a valid event (messages only for a rejected
one), and each field is read once — with upb, reading a field costs more than checking it.

A rejection is a :class:`~classtrace.errors.ValidationError` whose ``field`` is the dotted path of
the offending field and whose ``reason`` says what was expected. A reason quotes numbers (counts,
lengths, enum numbers, times), never a text value of the event: a text value goes in ``got``,
which only the sender's answer shows (``str(error)``); dead letters and logs keep ``error.rule``.
A ``student_id`` is not even put in ``got``: a value that is not a pseudonym may be a raw student
identifier (issue 17).

Rules beyond docs/DESIGN.md §4's list, decided here: ``lesson_id`` is required on lesson lifecycle
events; ``teacher_id`` on PHASE_STARTED; ``item_id`` on VERB_ANSWERED (answer accuracy is per
item); the nil UUID is refused as an event id (a producer stuck on it would collapse every event
into one); a behaviour may appear once per observation. ``received_at`` is not checked: a device's
value is ignored and overwritten at ingest. ``seq`` is not checked (ordering is the consumers').
Free text is bounded (:data:`MAX_TEXT` characters a value, :data:`MAX_KNOWLEDGE_POINTS` knowledge
points a trace): a bound keeps one event from filling a row, a dead letter or a worker's memory,
and keeps the text a label rather than a document.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from classtrace.errors import ValidationError
from classtrace.ids import NIL_UUID, PSEUDONYM_PATTERN, UUID_PATTERN
from classtrace.v1 import events_pb2 as pb

__all__ = [
    "ID_PATTERN",
    "MAX_AGE",
    "MAX_BATCH_EVENTS",
    "MAX_DURATION_MS",
    "MAX_FUTURE",
    "MAX_HEARTBEAT_INTERVAL_S",
    "MAX_KNOWLEDGE_POINTS",
    "MAX_PRESENT",
    "MAX_TEXT",
    "BatchIds",
    "EventFields",
    "check_batch_size",
    "check_event",
    "is_pseudonym",
    "read_batch",
    "read_event",
    "split_events",
    "validate_event",
]

MAX_FUTURE = timedelta(seconds=300)  # device clocks drift; beyond this the clock is wrong
MAX_AGE = timedelta(days=7)  # older spool contents are lost, not late
MAX_PRESENT = 500  # students in one frame / enrolled in one lesson
MAX_BATCH_EVENTS = 1000  # per EventBatch, per HTTP request and per Kafka record
MAX_DURATION_MS = 4 * 3600 * 1000  # a teaching segment longer than 4 h is a recogniser fault
MAX_HEARTBEAT_INTERVAL_S = 86_400
MAX_TEXT = 64  # characters of a free-text value: subject, grade, firmware, one knowledge point
MAX_KNOWLEDGE_POINTS = 16  # knowledge points one learning trace names (an item tests a few)
ID_PATTERN = r"[A-Za-z0-9_.:-]{1,64}"

_ID_MATCH = re.compile(ID_PATTERN).fullmatch
_UUID_MATCH = re.compile(UUID_PATTERN).fullmatch
_PSEUDONYM_MATCH = re.compile(PSEUDONYM_PATTERN).fullmatch
_ID_RULE = "1–64 characters of [A-Za-z0-9_.:-]"
_MAX_FUTURE_S = MAX_FUTURE.total_seconds()
_MAX_AGE_S = MAX_AGE.total_seconds()
_MIN_DELTA = -_MAX_AGE_S
_INF = math.inf
_MAX_NANOS = 999_999_999
_PSEUDONYM_RULE = (
    "must be a pseudonym 'ps_' + 32 lowercase hex (computed on the device); "
    "raw student identifiers are not accepted"
)


def _known(enum: Iterable[tuple[str, int]], *, allow_zero: bool = False) -> frozenset[int]:
    return frozenset(n for _, n in enum if n or allow_zero)


_DEVICE_KINDS = _known(pb.DeviceKind.items())
_PHASES = _known(pb.LessonLifecycle.Phase.items())
_KINDS = _known(pb.TeachingBehavior.Kind.items())
_BEHAVIORS = _known(pb.ClassObservation.Behavior.items())
_VERBS = _known(pb.LearningTrace.Verb.items())
_CONTEXTS = _known(pb.LearningTrace.Context.items(), allow_zero=True)  # context is optional
_STARTED = pb.LessonLifecycle.PHASE_STARTED
_ANSWERED = pb.LearningTrace.VERB_ANSWERED


# --- messages (built only for a rejected event) -------------------------------------------------


def _show(value: str) -> str:
    """repr() of a value, cut short: a reason must stay readable and bounded."""
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _bad_id(field: str, value: str) -> ValidationError:
    if not value:
        return ValidationError(field, f"must be set ({_ID_RULE})")
    return ValidationError(field, f"must be {_ID_RULE}", _show(value))


def _bad_enum(field: str, value: int, zero_name: str) -> ValidationError:
    if value == 0:
        return ValidationError(field, f"must be set (got {zero_name})")
    return ValidationError(field, f"unknown enum value {value}")


def _too_long(field: str, value: str) -> ValidationError:
    return ValidationError(field, f"must be at most {MAX_TEXT} characters, got {len(value)}")


def _bad_knowledge_points(points: list[str]) -> ValidationError:
    if len(points) > MAX_KNOWLEDGE_POINTS:
        return ValidationError(
            "trace.knowledge_points", f"{len(points)} entries exceed the limit of {MAX_KNOWLEDGE_POINTS}"
        )
    i = next(i for i, point in enumerate(points) if len(point) > MAX_TEXT)
    return _too_long(f"trace.knowledge_points[{i}]", points[i])


def _out_of_range(field: str, value: float, low: float, high: float) -> ValidationError:
    return ValidationError(field, f"must be in [{low:g}, {high:g}], got {value:g}")


def _ts_text(seconds: int, nanos: int) -> str:
    try:
        when = datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=nanos // 1000)
    except (OverflowError, OSError, ValueError):
        return f"{seconds} s since the epoch"
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- ids: a bounded memo of strings already found valid ----------------------------------------
# School, classroom, device, lesson, teacher and item ids repeat across millions of events; a set
# lookup (~20 ns) replaces a regex call (~200 ns). Only valid strings are remembered and the set
# is emptied when full, so hostile input cannot grow it; set operations are atomic, so threads
# may share it. The memo changes cost, never an answer.
_MEMO_MAX = 1 << 16
_OK_IDS: set[str] = set()
_OK_PSEUDONYMS: set[str] = set()


def _learn(memo: set[str], match: Callable[[str], re.Match[str] | None], value: str) -> bool:
    if match(value) is None:
        return False
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo.add(value)
    return True


def _id_ok(value: str) -> bool:
    """Whether ``value`` follows the id rule (memoised)."""
    return value in _OK_IDS or _learn(_OK_IDS, _ID_MATCH, value)


def _pseudonym_ok(value: str) -> bool:
    """Whether ``value`` is a pseudonym (memoised)."""
    return value in _OK_PSEUDONYMS or _learn(_OK_PSEUDONYMS, _PSEUDONYM_MATCH, value)


def is_pseudonym(value: str) -> bool:
    """Whether ``value`` passes the ``trace.student_id`` rule: what dead letters may keep."""
    return _pseudonym_ok(value)


# --- rules: each lives once, in the reader of the part of the event it is about -------------------
# With upb a field read costs more than the check made on it, and the worker needs most of the
# fields validation reads: read_event returns them so nothing is read twice. read_event reads the
# envelope, then hands the payload to its reader; every rule is in exactly one of these functions.


class EventFields(NamedTuple):
    """What :func:`read_event` returns: the envelope fields and the payload values it read.

    A tuple, so ``payload, event_id, …, p3 = read_event(…)`` unpacks it. ``p0``…``p3`` depend on
    ``payload``:

    - ``trace``: the LearningTrace, student_id, verb, item_id
    - ``observation``: present, attentive, ``{behavior: count}``, None
    - ``teaching``: kind, duration_ms, None, None
    - ``lesson``: the LessonLifecycle, phase, None, None
    - ``heartbeat``: the DeviceHeartbeat, None, None, None
    """

    payload: str
    event_id: str
    school_id: str
    classroom_id: str
    device_id: str
    lesson_id: str
    seconds: int
    """occurred_at.seconds"""
    nanos: int
    """occurred_at.nanos"""
    p0: Any
    p1: Any
    p2: Any
    p3: Any


PayloadValues = tuple[Any, Any, Any, Any]
"""``(p0, p1, p2, p3)`` of :class:`EventFields`, as a payload reader returns them."""

_NO_PAYLOAD = "exactly one payload is required (lesson, teaching, observation, trace or heartbeat), got none"


def read_event(event: pb.Event, now_s: float) -> EventFields:
    """Validate ``event`` against the receiver clock ``now_s`` (epoch seconds); return its fields.

    Raises ValidationError at the first rule broken: envelope rules first (ids, device_kind,
    occurred_at), then the payload's. ``payload`` is the oneof's name; see :class:`EventFields`.
    """
    eid, school, classroom, device, lesson_id = _read_envelope(event)
    seconds, nanos = _read_occurred_at(event, now_s)
    payload = event.WhichOneof("payload")
    if payload is None:
        raise ValidationError("payload", _NO_PAYLOAD)
    p0, p1, p2, p3 = _PAYLOAD_READERS[payload](event)
    return EventFields(payload, eid, school, classroom, device, lesson_id, seconds, nanos, p0, p1, p2, p3)


def _read_envelope(event: pb.Event) -> tuple[str, str, str, str, str]:
    """event_id, school_id, classroom_id, device_id, lesson_id — after their rules and device_kind's."""
    eid = event.event_id
    if _UUID_MATCH(eid) is None or eid == NIL_UUID:
        raise _bad_event_id(eid)
    school = event.school_id
    if not _id_ok(school):
        raise _bad_id("school_id", school)
    classroom = event.classroom_id
    if not _id_ok(classroom):
        raise _bad_id("classroom_id", classroom)
    device = event.device_id
    if not _id_ok(device):
        raise _bad_id("device_id", device)
    lesson_id = event.lesson_id
    if lesson_id and not _id_ok(lesson_id):
        raise _bad_id("lesson_id", lesson_id)
    kind = event.device_kind
    if kind not in _DEVICE_KINDS:
        raise _bad_enum("device_kind", kind, "DEVICE_KIND_UNSPECIFIED")
    return eid, school, classroom, device, lesson_id


def _read_occurred_at(event: pb.Event, now_s: float) -> tuple[int, int]:
    """occurred_at's seconds and nanos, within [now - MAX_AGE, now + MAX_FUTURE] of ``now_s``."""
    # An unset occurred_at reads as 1970 and fails the window: HasField only on the error path.
    ts = event.occurred_at
    seconds, nanos = ts.seconds, ts.nanos
    delta = seconds + nanos * 1e-9 - now_s
    if not _MIN_DELTA <= delta <= _MAX_FUTURE_S or not 0 <= nanos <= _MAX_NANOS:
        raise _bad_occurred_at(event, delta)
    return seconds, nanos


def _bad_event_id(eid: str) -> ValidationError:
    if eid == NIL_UUID:
        return ValidationError("event_id", "the nil UUID is not a usable idempotency key")
    return ValidationError("event_id", "must be a UUID", _show(eid))


def _bad_occurred_at(event: pb.Event, delta: float) -> ValidationError:
    if not event.HasField("occurred_at"):
        return ValidationError("occurred_at", "must be set (the device clock's time of the event)")
    seconds, nanos = event.occurred_at.seconds, event.occurred_at.nanos
    if not 0 <= nanos <= _MAX_NANOS:
        return ValidationError("occurred_at", f"nanos must be in [0, {_MAX_NANOS}], got {nanos}")
    if delta > 0:
        return ValidationError(
            "occurred_at",
            f"{_ts_text(seconds, nanos)} is {math.ceil(delta)} s in the future of the receiver "
            f"clock (limit {_MAX_FUTURE_S:.0f} s)",
        )
    return ValidationError(
        "occurred_at",
        f"{_ts_text(seconds, nanos)} is older than {MAX_AGE.days} days "
        f"({-delta / 86_400:.1f} days before the receiver clock)",
    )


def _check_optional_id(field: str, value: str, required: bool, when: str) -> None:
    """An id that may be left empty, but must be set ``when`` (``required``)."""
    if value:
        if not _id_ok(value):
            raise _bad_id(field, value)
    elif required:
        raise ValidationError(field, f"must be set {when} ({_ID_RULE})")


def _read_trace(event: pb.Event) -> tuple[pb.LearningTrace, str, int, str]:
    trace = event.trace
    student_id = trace.student_id
    if not _pseudonym_ok(student_id):
        raise ValidationError("trace.student_id", _PSEUDONYM_RULE)  # never echo the value
    verb = trace.verb
    if verb not in _VERBS:
        raise _bad_enum("trace.verb", verb, "VERB_UNSPECIFIED")
    item_id = trace.item_id
    _check_optional_id("trace.item_id", item_id, verb == _ANSWERED, "for VERB_ANSWERED")
    context = trace.context
    if context not in _CONTEXTS:
        raise ValidationError("trace.context", f"unknown enum value {context}")
    score = trace.score
    if not 0.0 <= score < _INF:
        raise ValidationError("trace.score", f"must be a finite number ≥ 0, got {score:g}")
    points = trace.knowledge_points
    # len() of a repeated field is cheap; the per-entry scan runs only on a trace that has some.
    if points and (len(points) > MAX_KNOWLEDGE_POINTS or max(map(len, points)) > MAX_TEXT):
        raise _bad_knowledge_points(list(points))
    return trace, student_id, verb, item_id


def _read_observation(event: pb.Event) -> tuple[int, int, dict[int, int], None]:
    obs = event.observation
    present = obs.present
    if present > MAX_PRESENT:
        raise ValidationError("observation.present", f"{present} exceeds {MAX_PRESENT}")
    attentive = obs.attentive
    if attentive > present:
        raise ValidationError("observation.attentive", f"{attentive} exceeds present {present}")
    counts: dict[int, int] = {}
    for i, item in enumerate(obs.counts):
        behavior = item.behavior
        if behavior not in _BEHAVIORS:
            raise _bad_enum(f"observation.counts[{i}].behavior", behavior, "BEHAVIOR_UNSPECIFIED")
        count = item.count
        if count > present:
            raise ValidationError(f"observation.counts[{i}].count", f"{count} exceeds present {present}")
        if behavior in counts:
            name = pb.ClassObservation.Behavior.Name(behavior)
            raise ValidationError(f"observation.counts[{i}].behavior", f"{name} is counted twice")
        counts[behavior] = count
    return present, attentive, counts, None


def _read_lesson(event: pb.Event) -> tuple[pb.LessonLifecycle, int, None, None]:
    if not event.lesson_id:
        raise ValidationError("lesson_id", "must be set on a lesson lifecycle event")
    lesson = event.lesson
    phase = lesson.phase
    if phase not in _PHASES:
        raise _bad_enum("lesson.phase", phase, "PHASE_UNSPECIFIED")
    teacher_id = lesson.teacher_id
    _check_optional_id("lesson.teacher_id", teacher_id, phase == _STARTED, "when a lesson starts")
    if len(lesson.subject) > MAX_TEXT:
        raise _too_long("lesson.subject", lesson.subject)
    if len(lesson.grade) > MAX_TEXT:
        raise _too_long("lesson.grade", lesson.grade)
    if lesson.enrolled > MAX_PRESENT:
        raise ValidationError("lesson.enrolled", f"{lesson.enrolled} exceeds {MAX_PRESENT}")
    return lesson, phase, None, None


def _read_teaching(event: pb.Event) -> tuple[int, int, None, None]:
    teaching = event.teaching
    kind = teaching.kind
    if kind not in _KINDS:
        raise _bad_enum("teaching.kind", kind, "KIND_UNSPECIFIED")
    teacher_id = teaching.teacher_id
    if teacher_id and not _id_ok(teacher_id):
        raise _bad_id("teaching.teacher_id", teacher_id)
    duration = teaching.duration_ms
    if not 0 < duration <= MAX_DURATION_MS:
        raise ValidationError(
            "teaching.duration_ms", f"must be in (0, {MAX_DURATION_MS}] (4 h), got {duration}"
        )
    confidence = teaching.confidence
    if not 0.0 <= confidence <= 1.0:  # also refuses NaN
        raise _out_of_range("teaching.confidence", confidence, 0, 1)
    return kind, duration, None, None


def _read_heartbeat(event: pb.Event) -> tuple[pb.DeviceHeartbeat, None, None, None]:
    hb = event.heartbeat
    if not 0 < hb.interval_s <= MAX_HEARTBEAT_INTERVAL_S:
        raise ValidationError(
            "heartbeat.interval_s",
            f"must be in (0, {MAX_HEARTBEAT_INTERVAL_S}] seconds, got {hb.interval_s}",
        )
    if not 0.0 <= hb.battery_pct <= 100.0:
        raise _out_of_range("heartbeat.battery_pct", hb.battery_pct, 0, 100)
    if not 0.0 <= hb.cpu_pct <= 100.0:
        raise _out_of_range("heartbeat.cpu_pct", hb.cpu_pct, 0, 100)
    if len(hb.firmware) > MAX_TEXT:
        raise _too_long("heartbeat.firmware", hb.firmware)
    return hb, None, None, None


_PAYLOAD_READERS: dict[str, Callable[[pb.Event], PayloadValues]] = {
    "trace": _read_trace,
    "observation": _read_observation,
    "teaching": _read_teaching,
    "lesson": _read_lesson,
    "heartbeat": _read_heartbeat,
}
"""The reader of each member of Event's ``payload`` oneof (a test checks none is missing)."""


# --- batches -------------------------------------------------------------------------------------


class BatchIds(NamedTuple):
    """The distinct envelope ids of a batch whose every event passed (see :func:`read_batch`)."""

    school_ids: set[str]
    classroom_ids: set[str]
    device_ids: set[str]


def read_batch(events: Iterable[pb.Event], now_s: float) -> BatchIds | None:
    """Whether every event of ``events`` passes every rule at ``now_s``; its distinct ids if so.

    :func:`read_event` on each event, nothing more: None means some event broke a rule, and
    read_event on each event says which and why.
    """
    schools: set[str] = set()
    classrooms: set[str] = set()
    devices: set[str] = set()
    try:
        for event in events:
            fields = read_event(event, now_s)
            schools.add(fields.school_id)
            classrooms.add(fields.classroom_id)
            devices.add(fields.device_id)
    except ValidationError:
        return None
    return BatchIds(schools, classrooms, devices)


# --- public API -----------------------------------------------------------------------------------


def _now_seconds(now: datetime | float) -> float:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware: a naive datetime has no event time")
        return now.timestamp()
    return float(now)


def validate_event(event: pb.Event, now: datetime | float) -> None:
    """Raise ValidationError(field, reason) at the first rule ``event`` breaks.

    ``now`` is the receiver's clock (aware datetime or epoch seconds; seconds are cheaper) that
    ``occurred_at`` is judged against. Envelope rules come first, then the payload's.
    """
    read_event(event, now if now.__class__ is float else _now_seconds(now))


def check_event(event: pb.Event, now: datetime | float) -> ValidationError | None:
    """Like :func:`validate_event`, but return the error (or None): for ok/error splits."""
    try:
        validate_event(event, now)
    except ValidationError as exc:
        return exc
    return None


def split_events(
    events: Iterable[pb.Event], now: datetime | float
) -> tuple[list[pb.Event], list[tuple[int, pb.Event, ValidationError]]]:
    """Split events into the valid ones and ``(index, event, error)`` for each rejected one."""
    now_s = _now_seconds(now)
    ok: list[pb.Event] = []
    rejected: list[tuple[int, pb.Event, ValidationError]] = []
    for i, event in enumerate(events):
        try:
            validate_event(event, now_s)
        except ValidationError as exc:
            rejected.append((i, event, exc))
        else:
            ok.append(event)
    return ok, rejected


def check_batch_size(n_events: int) -> None:
    """Raise ValidationError when a batch holds more than MAX_BATCH_EVENTS events (HTTP 413)."""
    if n_events > MAX_BATCH_EVENTS:
        raise ValidationError("events", f"{n_events} events exceed the limit of {MAX_BATCH_EVENTS} per batch")
