"""The event rules of DESIGN §4, shared by every entry point (SDK, gateway, Kafka consumers).

One implementation, so an event the edge accepts is never rejected downstream for a different
reason. It runs on the hot path (hundreds of thousands of events/s): patterns are precompiled,
ids already seen valid are memoised, the cheap checks come first, nothing is built for a valid
event (messages only for a rejected one), and each field is read once — with upb, reading a
field costs more than checking it.

A rejection is a :class:`~classtrace.errors.ValidationError` whose ``field`` is the dotted path of
the offending field and whose ``reason`` says what was expected and what was found; it travels
with the event to the dead-letter topic. Reasons never echo a ``student_id``: a value that is not
a pseudonym may be a raw student identifier, which must not reach logs or ``dead_letters``.

Rules beyond DESIGN §4's list, decided here: ``lesson_id`` is required on lesson lifecycle
events; ``teacher_id`` on PHASE_STARTED; ``item_id`` on VERB_ANSWERED (answer accuracy is per
item); the nil UUID is refused as an event id (a producer stuck on it would collapse every event
into one); a behaviour may appear once per observation. ``received_at`` is not checked: a device's
value is ignored and overwritten at ingest. ``seq`` is not checked (ordering is the consumers').
``trace.knowledge_points`` are free text and not checked (see ``_check_trace``).
"""

from __future__ import annotations

import binascii
import math
import operator
import re
import sys
from collections.abc import Callable, Iterable, Sequence
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
    "MAX_PRESENT",
    "MAX_TEXT",
    "BatchIds",
    "EventFields",
    "check_batch_size",
    "check_event",
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
MAX_TEXT = 64  # free-text fields of rare events (subject, grade, firmware)
ID_PATTERN = r"[A-Za-z0-9_.:-]{1,64}"

_ID_MATCH = re.compile(ID_PATTERN).fullmatch
_UUID_MATCH = re.compile(UUID_PATTERN).fullmatch
_PSEUDONYM_MATCH = re.compile(PSEUDONYM_PATTERN).fullmatch
_ID_RULE = "1–64 characters of [A-Za-z0-9_.:-]"
_MAX_FUTURE_S = MAX_FUTURE.total_seconds()
_MAX_AGE_S = MAX_AGE.total_seconds()
_MIN_DELTA = -_MAX_AGE_S
_INF = math.inf
_MAX_FLOAT = sys.float_info.max
_ISNAN = math.isnan
_A2B_HEX = binascii.a2b_hex
_NIL_LINE = NIL_UUID + "\n"
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
    return ValidationError(field, f"must be {_ID_RULE}, got {_show(value)}")


def _bad_enum(field: str, value: int, zero_name: str) -> ValidationError:
    if value == 0:
        return ValidationError(field, f"must be set (got {zero_name})")
    return ValidationError(field, f"unknown enum value {value}")


def _too_long(field: str, value: str) -> ValidationError:
    return ValidationError(field, f"must be at most {MAX_TEXT} characters, got {len(value)}")


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


# --- rules: check each field once and hand back what was read ------------------------------------
# With upb a field read costs more than the check made on it, and the worker needs most of the
# fields validation reads: read_event returns them so nothing is read twice.

EventFields = tuple[str, str, str, str, str, str, int, int, Any, Any, Any, Any]
"""What :func:`read_event` returns: ``(payload, event_id, school_id, classroom_id, device_id,
lesson_id, occurred_at.seconds, occurred_at.nanos, p0, p1, p2, p3)``; see read_event for p0…p3."""

_NO_PAYLOAD = "exactly one payload is required (lesson, teaching, observation, trace or heartbeat), got none"


def read_event(event: pb.Event, now_s: float) -> EventFields:
    """Validate ``event`` against the receiver clock ``now_s`` (epoch seconds); return its fields.

    Raises ValidationError at the first rule broken: envelope rules first, then the payload's.
    ``payload`` is the oneof's name and p0…p3 are the payload values the rules read:

    - ``trace``: the LearningTrace, student_id, verb, item_id
    - ``observation``: present, attentive, ``{behavior: count}``, None
    - ``teaching``: kind, duration_ms, None, None
    - ``lesson``: the LessonLifecycle, phase, None, None
    - ``heartbeat``: the DeviceHeartbeat, None, None, None
    """
    # Inlined membership tests: this runs for every event, and a call costs as much as a lookup.
    eid = event.event_id
    if _UUID_MATCH(eid) is None or eid == NIL_UUID:
        raise _bad_event_id(eid)
    school = event.school_id
    if school not in _OK_IDS and not _learn(_OK_IDS, _ID_MATCH, school):
        raise _bad_id("school_id", school)
    classroom = event.classroom_id
    if classroom not in _OK_IDS and not _learn(_OK_IDS, _ID_MATCH, classroom):
        raise _bad_id("classroom_id", classroom)
    device = event.device_id
    if device not in _OK_IDS and not _learn(_OK_IDS, _ID_MATCH, device):
        raise _bad_id("device_id", device)
    lesson_id = event.lesson_id
    if lesson_id and lesson_id not in _OK_IDS and not _learn(_OK_IDS, _ID_MATCH, lesson_id):
        raise _bad_id("lesson_id", lesson_id)
    kind = event.device_kind
    if kind not in _DEVICE_KINDS:
        raise _bad_enum("device_kind", kind, "DEVICE_KIND_UNSPECIFIED")
    # An unset occurred_at reads as 1970 and fails the window: HasField only on the error path.
    ts = event.occurred_at
    seconds, nanos = ts.seconds, ts.nanos
    delta = seconds + nanos * 1e-9 - now_s
    if not _MIN_DELTA <= delta <= _MAX_FUTURE_S or not 0 <= nanos <= _MAX_NANOS:
        raise _bad_occurred_at(event, delta)
    payload = event.WhichOneof("payload")
    # The two payloads of nearly every event (answers, camera frames) are checked inline.
    if payload == "trace":
        trace = event.trace
        student_id = trace.student_id
        if student_id not in _OK_PSEUDONYMS and not _learn(_OK_PSEUDONYMS, _PSEUDONYM_MATCH, student_id):
            raise ValidationError("trace.student_id", _PSEUDONYM_RULE)  # never echo the value
        verb = trace.verb
        if verb not in _VERBS:
            raise _bad_enum("trace.verb", verb, "VERB_UNSPECIFIED")
        item_id = trace.item_id
        if item_id:
            if item_id not in _OK_IDS and not _learn(_OK_IDS, _ID_MATCH, item_id):
                raise _bad_id("trace.item_id", item_id)
        elif verb == _ANSWERED:
            raise ValidationError("trace.item_id", f"must be set for VERB_ANSWERED ({_ID_RULE})")
        context = trace.context
        if context not in _CONTEXTS:
            raise ValidationError("trace.context", f"unknown enum value {context}")
        score = trace.score
        if not 0.0 <= score < _INF:
            raise ValidationError("trace.score", f"must be a finite number ≥ 0, got {score:g}")
        # knowledge_points are free text and not checked: reading a repeated field costs more
        # than all the other trace rules together, and the gateway's 1 MiB body limit bounds them.
        return (payload, eid, school, classroom, device, lesson_id, seconds, nanos,
                trace, student_id, verb, item_id)  # fmt: skip
    if payload == "observation":
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
        return (payload, eid, school, classroom, device, lesson_id, seconds, nanos,
                present, attentive, counts, None)  # fmt: skip
    if payload == "teaching":
        p0, p1 = _read_teaching(event.teaching)
        return (payload, eid, school, classroom, device, lesson_id, seconds, nanos, p0, p1, None, None)
    if payload == "lesson":
        lesson = event.lesson
        phase = _read_lesson(lesson, lesson_id)
        return (payload, eid, school, classroom, device, lesson_id, seconds, nanos, lesson, phase, None, None)
    if payload == "heartbeat":
        hb = event.heartbeat
        _read_heartbeat(hb)
        return (payload, eid, school, classroom, device, lesson_id, seconds, nanos, hb, None, None, None)
    raise ValidationError("payload", _NO_PAYLOAD)


def _bad_event_id(eid: str) -> ValidationError:
    if eid == NIL_UUID:
        return ValidationError("event_id", "the nil UUID is not a usable idempotency key")
    return ValidationError("event_id", f"must be a UUID, got {_show(eid)}")


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


def _read_lesson(lesson: pb.LessonLifecycle, lesson_id: str) -> int:
    if not lesson_id:
        raise ValidationError("lesson_id", "must be set on a lesson lifecycle event")
    phase = lesson.phase
    if phase not in _PHASES:
        raise _bad_enum("lesson.phase", phase, "PHASE_UNSPECIFIED")
    teacher_id = lesson.teacher_id
    if teacher_id:
        if not _id_ok(teacher_id):
            raise _bad_id("lesson.teacher_id", teacher_id)
    elif phase == _STARTED:
        raise ValidationError("lesson.teacher_id", f"must be set when a lesson starts ({_ID_RULE})")
    if len(lesson.subject) > MAX_TEXT:
        raise _too_long("lesson.subject", lesson.subject)
    if len(lesson.grade) > MAX_TEXT:
        raise _too_long("lesson.grade", lesson.grade)
    if lesson.enrolled > MAX_PRESENT:
        raise ValidationError("lesson.enrolled", f"{lesson.enrolled} exceeds {MAX_PRESENT}")
    return phase


def _read_teaching(teaching: pb.TeachingBehavior) -> tuple[int, int]:
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
    return kind, duration


def _read_heartbeat(hb: pb.DeviceHeartbeat) -> None:
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


# --- batches: the same rules, one field at a time -----------------------------------------------
# For decoded batches: the gateway's path for JSON requests and for requests the C wire scanner
# (classtrace.wire) does not accept. Per event, read_event costs ~3 µs: about
# half is upb field reads, the rest the Python around each check. read_batch reads each field of
# all events in one comprehension and checks whole columns — distinct ids once, enums by set
# inclusion, ranges by min/max, the event ids as one string — so that Python is paid per batch.
# It only ever *accepts*: when an event may break a rule, or sits where a column check does not
# decide (within a second of the occurred_at window), it answers None and the caller validates
# per event with read_event, whose errors, reasons and precedence stay the only ones. A
# differential test holds read_batch to read_event (tests/unit/test_validation_batch.py).


class BatchIds(NamedTuple):
    """The distinct envelope ids of a batch whose every event passed (see :func:`read_batch`)."""

    school_ids: set[str]
    classroom_ids: set[str]
    device_ids: set[str]


def read_batch(events: Sequence[pb.Event], now_s: float) -> BatchIds | None:
    """Whether every event of ``events`` passes every rule at ``now_s``; its distinct ids if so.

    None means "not shown here": some event may break a rule, or lies within a second of the
    ``occurred_at`` limits. Then validate each event with :func:`read_event` for the verdicts.
    Whenever it returns ids, read_event would have returned for every event. ``events`` should
    be a list: each field is one pass over it (a upb repeated field re-creates its items).
    """
    if not events:
        return BatchIds(set(), set(), set())
    if not _uuids_ok([ev.event_id for ev in events]):
        return None
    schools = {ev.school_id for ev in events}
    classrooms = {ev.classroom_id for ev in events}
    devices = {ev.device_id for ev in events}
    lessons = {ev.lesson_id for ev in events}
    lessons.discard("")  # optional outside lessons
    if not (_ids_ok(schools) and _ids_ok(classrooms) and _ids_ok(devices) and _ids_ok(lessons)):
        return None
    if not {ev.device_kind for ev in events} <= _DEVICE_KINDS:
        return None
    stamps = [ev.occurred_at for ev in events]
    seconds = [ts.seconds for ts in stamps]
    nanos = [ts.nanos for ts in stamps]
    # read_event judges seconds + nanos·1e-9, which lies in [seconds, seconds + 1): when both ends
    # of every event are inside the window, so is the event. Float rounding is monotonic, so
    # read_event's own arithmetic lands inside too. An unset occurred_at reads 0 and fails here.
    if min(seconds) - now_s < _MIN_DELTA or max(seconds) + 1 - now_s > _MAX_FUTURE_S:
        return None
    if min(nanos) < 0 or max(nanos) > _MAX_NANOS:
        return None
    traces: list[pb.LearningTrace] = []
    observations: list[pb.ClassObservation] = []
    teachings: list[pb.TeachingBehavior] = []
    others: list[pb.Event] = []
    for ev, payload in zip(events, [ev.WhichOneof("payload") for ev in events], strict=True):
        if payload == "trace":
            traces.append(ev.trace)
        elif payload == "observation":
            observations.append(ev.observation)
        elif payload == "teaching":
            teachings.append(ev.teaching)
        elif payload is None:
            return None
        else:
            others.append(ev)
    if traces and not _traces_ok(traces):
        return None
    if observations and not _observations_ok(observations):
        return None
    if teachings and not _teachings_ok(teachings):
        return None
    for ev in others:  # lesson lifecycle and heartbeats are rare: the per-event rules as they are
        try:
            read_event(ev, now_s)
        except ValidationError:
            return None
    return BatchIds(schools, classrooms, devices)


def _ids_ok(values: set[str]) -> bool:
    return values <= _OK_IDS or all(map(_id_ok, values))


def _uuids_ok(event_ids: list[str]) -> bool:
    """Every id a canonical, non-nil UUID — one string for the batch instead of a regex each.

    ``joined`` is each id followed by a newline. If it is 37 characters per id, has newlines at
    every 37th position and dashes at the four UUID columns of each block, and removing all
    dashes and newlines leaves 32 hex digits per id, then no id holds a dash or newline
    elsewhere: each is 36 characters, dashes at 8, 13, 18, 23, hex digits around them.
    """
    n = len(event_ids)
    if not n:
        return True
    joined = "\n".join(event_ids) + "\n"
    if len(joined) != 37 * n or joined[36::37] != "\n" * n:
        return False
    dashes = "-" * n
    if not joined[8::37] == joined[13::37] == joined[18::37] == joined[23::37] == dashes:
        return False
    digits = joined.replace("-", "").replace("\n", "")
    if len(digits) != 32 * n:
        return False
    try:
        _A2B_HEX(digits)  # hex digits only (either case); anything else, non-ASCII too, raises
    except ValueError:  # binascii.Error is a ValueError
        return False
    return _NIL_LINE not in joined  # a match can only be a whole block: newlines end blocks


def _within(values: list[float], low: float, high: float) -> bool:
    """All of ``values`` in [low, high]; a NaN anywhere makes the sum NaN (min/max may skip it)."""
    return low <= min(values) and max(values) <= high and not _ISNAN(sum(values))


def _traces_ok(traces: list[pb.LearningTrace]) -> bool:
    students = {t.student_id for t in traces}
    if not students <= _OK_PSEUDONYMS and not all(
        _learn(_OK_PSEUDONYMS, _PSEUDONYM_MATCH, s) for s in students
    ):
        return False
    verbs = [t.verb for t in traces]
    if not set(verbs) <= _VERBS:
        return False
    items = [t.item_id for t in traces]
    distinct = set(items)
    if "" in distinct:
        distinct.discard("")
        if _ANSWERED in {verb for verb, item in zip(verbs, items, strict=True) if not item}:
            return False
    if not _ids_ok(distinct) or not {t.context for t in traces} <= _CONTEXTS:
        return False
    return _within([t.score for t in traces], 0.0, _MAX_FLOAT)  # finite and ≥ 0


def _observations_ok(observations: list[pb.ClassObservation]) -> bool:
    presents = [o.present for o in observations]
    if max(presents) > MAX_PRESENT:
        return False
    if not all(map(operator.le, [o.attentive for o in observations], presents)):
        return False
    for obs, present in zip(observations, presents, strict=True):
        seen = 0  # behaviours counted so far, as bits (known behaviours are small numbers)
        for item in obs.counts:
            behavior = item.behavior
            if behavior not in _BEHAVIORS or item.count > present or seen >> behavior & 1:
                return False
            seen |= 1 << behavior
    return True


def _teachings_ok(teachings: list[pb.TeachingBehavior]) -> bool:
    if not {t.kind for t in teachings} <= _KINDS:
        return False
    teachers = {t.teacher_id for t in teachings}
    teachers.discard("")  # optional: a camera may not know who teaches
    if not _ids_ok(teachers):
        return False
    durations = [t.duration_ms for t in teachings]
    if min(durations) <= 0 or max(durations) > MAX_DURATION_MS:
        return False
    return _within([t.confidence for t in teachings], 0.0, 1.0)


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
