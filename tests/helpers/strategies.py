"""Hypothesis strategies for classtrace events, valid by docs/DESIGN.md §4, shared by every test tier.

``events(now=...)`` yields realistic events of all five payload kinds (device kinds that fit the
payload, pseudonymised students, lesson-scoped ids) that pass ``classtrace.validation`` against
``now``; ``invalid_events()`` yields ``(event, field)`` pairs where exactly one rule is broken and
``field`` is the dotted path validation must name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from classtrace.v1 import events_pb2 as pb
from classtrace.validation import (
    ID_PATTERN,
    MAX_AGE,
    MAX_DURATION_MS,
    MAX_FUTURE,
    MAX_PRESENT,
    MAX_TEXT,
)
from tests.helpers import clock

# The receiver clock (04:00 UTC yesterday, fixed for the day so failures reproduce) keeps events
# inside every table's retention when a test stores them; pass ``now=`` for others.
NOW = clock.NOW.timestamp()
PAYLOAD_KINDS = ("lesson", "teaching", "observation", "trace", "heartbeat")

DK = pb.DeviceKind
LL = pb.LessonLifecycle
TB = pb.TeachingBehavior
CO = pb.ClassObservation
LT = pb.LearningTrace

# Which devices emit which payload (the simulator may emit anything).
_DEVICES_FOR = {
    "lesson": [DK.DEVICE_KIND_TEACHER_APP, DK.DEVICE_KIND_GATEWAY_SIM],
    "teaching": [DK.DEVICE_KIND_CAMERA, DK.DEVICE_KIND_AUDIO, DK.DEVICE_KIND_WHITEBOARD],
    "observation": [DK.DEVICE_KIND_CAMERA, DK.DEVICE_KIND_GATEWAY_SIM],
    "trace": [DK.DEVICE_KIND_TABLET, DK.DEVICE_KIND_WHITEBOARD, DK.DEVICE_KIND_GATEWAY_SIM],
    "heartbeat": [v for _, v in DK.items() if v],
}
_SUBJECTS = ["math", "chinese", "english", "physics", "chemistry", "biology", "history", "数学", "语文"]
_KNOWLEDGE = [
    "kp.algebra.linear-eq",
    "kp.geometry.triangle",
    "一元一次方程",
    "古诗词鉴赏",
    "kp.grammar.tense",
]


def _numbered(prefix: str, top: int = 9999) -> st.SearchStrategy[str]:
    return st.integers(1, top).map(lambda n: f"{prefix}-{n:04d}")


def ids(prefix: str) -> st.SearchStrategy[str]:
    """Valid ids: mostly realistic (``sch-0042``), sometimes any 1–64 chars of the id alphabet."""
    return st.one_of(_numbered(prefix), _numbered(prefix), st.from_regex(ID_PATTERN, fullmatch=True))


def pseudonyms() -> st.SearchStrategy[str]:
    """``ps_`` + 32 lowercase hex, the only student_id form allowed past the device."""
    return st.binary(min_size=16, max_size=16).map(lambda b: "ps_" + b.hex())


def timestamps(now: float = NOW) -> st.SearchStrategy[tuple[int, int]]:
    """(seconds, nanos) inside the accepted window around ``now``.

    The old edge keeps a day's margin: tests that validate against the real clock run minutes
    after the strategy was built, and hypothesis replays saved examples on later days.
    """
    low = int(now - MAX_AGE.total_seconds()) + 86_400
    high = int(now + MAX_FUTURE.total_seconds()) - 60
    return st.tuples(st.integers(low, high), st.integers(0, 999_999_999))


def _unit_floats(high: float) -> st.SearchStrategy[float]:
    return st.floats(0.0, high, width=32)  # float fields are float32: round trips stay exact


@st.composite
def lessons(draw: st.DrawFn) -> pb.LessonLifecycle:
    phase = draw(st.sampled_from([LL.PHASE_STARTED, LL.PHASE_ENDED]))
    teacher = draw(ids("t")) if phase == LL.PHASE_STARTED else draw(st.one_of(st.just(""), ids("t")))
    return LL(
        phase=phase,
        teacher_id=teacher,
        subject=draw(st.sampled_from(_SUBJECTS)),
        grade=draw(st.integers(1, 12).map(lambda g: f"G{g}")),
        enrolled=draw(st.one_of(st.integers(20, 60), st.integers(0, MAX_PRESENT))),
    )


@st.composite
def teachings(draw: st.DrawFn) -> pb.TeachingBehavior:
    return TB(
        kind=draw(st.sampled_from([v for _, v in TB.Kind.items() if v])),
        teacher_id=draw(st.one_of(ids("t"), st.just(""))),
        duration_ms=draw(st.one_of(st.integers(1_000, 600_000), st.integers(1, MAX_DURATION_MS))),
        confidence=draw(_unit_floats(1.0)),
    )


@st.composite
def observations(draw: st.DrawFn) -> pb.ClassObservation:
    present = draw(st.one_of(st.integers(20, 60), st.integers(0, MAX_PRESENT)))
    behaviors = draw(st.lists(st.sampled_from([v for _, v in CO.Behavior.items() if v]), unique=True))
    counts = [CO.BehaviorCount(behavior=b, count=draw(st.integers(0, present))) for b in behaviors]
    return CO(present=present, attentive=draw(st.integers(0, present)), counts=counts)


@st.composite
def traces(draw: st.DrawFn) -> pb.LearningTrace:
    verb = draw(st.sampled_from([v for _, v in LT.Verb.items() if v]))
    item = draw(ids("item")) if verb == LT.VERB_ANSWERED else draw(st.one_of(st.just(""), ids("item")))
    trace = LT(
        student_id=draw(pseudonyms()),
        verb=verb,
        item_id=item,
        knowledge_points=draw(
            st.lists(
                st.one_of(st.sampled_from(_KNOWLEDGE), st.text(min_size=1, max_size=MAX_TEXT)), max_size=4
            )
        ),
        score=draw(_unit_floats(100.0)),
        latency_ms=draw(st.integers(0, 600_000)),
        context=draw(st.sampled_from([v for _, v in LT.Context.items()])),
    )
    if verb in (LT.VERB_ANSWERED, LT.VERB_SUBMITTED) and draw(st.booleans()):
        trace.correct = draw(st.booleans())
    return trace


@st.composite
def heartbeats(draw: st.DrawFn) -> pb.DeviceHeartbeat:
    return pb.DeviceHeartbeat(
        battery_pct=draw(_unit_floats(100.0)),
        cpu_pct=draw(_unit_floats(100.0)),
        spool_depth=draw(st.one_of(st.integers(0, 10_000), st.integers(0, 2**64 - 1))),
        firmware=draw(st.from_regex(r"[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,3}", fullmatch=True)),
        interval_s=draw(st.sampled_from([10, 30, 60, 300])),
    )


_PAYLOADS: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "lesson": lessons,
    "teaching": teachings,
    "observation": observations,
    "trace": traces,
    "heartbeat": heartbeats,
}


@st.composite
def events(draw: st.DrawFn, now: float = NOW, kinds: tuple[str, ...] = PAYLOAD_KINDS) -> pb.Event:
    """A valid Event with one payload of ``kinds``, occurred inside the window around ``now``."""
    kind = draw(st.sampled_from(kinds))
    seconds, nanos = draw(timestamps(now))
    event = pb.Event(
        event_id=str(draw(st.uuids(version=4))),
        school_id=draw(ids("sch")),
        classroom_id=draw(ids("room")),
        device_id=draw(ids("dev")),
        seq=draw(st.one_of(st.integers(0, 1_000_000), st.integers(0, 2**64 - 1))),
        device_kind=draw(st.sampled_from(_DEVICES_FOR[kind])),
    )
    if kind == "lesson" or draw(st.booleans()):
        event.lesson_id = draw(ids("lsn"))
    event.occurred_at.seconds, event.occurred_at.nanos = seconds, nanos
    if draw(st.booleans()):  # as stamped by the gateway
        event.received_at.seconds = seconds + draw(st.integers(0, 120))
    getattr(event, kind).CopyFrom(draw(_PAYLOADS[kind]()))
    return event


def event_batches(now: float = NOW, max_size: int = 20) -> st.SearchStrategy[pb.EventBatch]:
    """An EventBatch of 0..max_size valid events."""
    return st.lists(events(now=now), max_size=max_size).map(lambda evs: pb.EventBatch(events=evs))


# --- one broken rule per event --------------------------------------------------------------------

Mutation = Callable[[st.DrawFn, pb.Event, float], str]  # mutates in place, returns the field


def _bad_id_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(""),
        st.just("x" * 65),
        st.text(min_size=1, max_size=10).filter(lambda s: not s.isascii() or " " in s or "/" in s),
        st.sampled_from(["a b", "room/3", "sch;drop", "班级-1"]),
    )


def _mutate_id(name: str, empty_ok: bool = False) -> Mutation:
    def mutate(draw: st.DrawFn, ev: pb.Event, now: float) -> str:
        bad = draw(_bad_id_text().filter(lambda s: bool(s) or not empty_ok))
        setattr(ev, name, bad)
        return name

    return mutate


def _set(path: str, values: st.SearchStrategy[object]) -> Mutation:
    def mutate(draw: st.DrawFn, ev: pb.Event, now: float) -> str:
        target: object = ev
        *parents, leaf = path.split(".")
        for part in parents:
            target = getattr(target, part)
        setattr(target, leaf, draw(values))
        return path

    return mutate


def _occurred(draw: st.DrawFn, ev: pb.Event, now: float) -> str:
    choice = draw(st.sampled_from(["unset", "future", "old", "nanos"]))
    if choice == "unset":
        ev.ClearField("occurred_at")
    elif choice == "future":
        ev.occurred_at.seconds = int(now + MAX_FUTURE.total_seconds()) + draw(st.integers(2, 10**6))
    elif choice == "old":
        ev.occurred_at.seconds = int(now - MAX_AGE.total_seconds()) - draw(st.integers(2, 10**8))
    else:
        ev.occurred_at.nanos = draw(st.sampled_from([-1, 1_000_000_000]))
    return "occurred_at"


def _no_payload(draw: st.DrawFn, ev: pb.Event, now: float) -> str:
    ev.ClearField(ev.WhichOneof("payload"))  # type: ignore[arg-type]
    return "payload"


def _raw_student(draw: st.DrawFn, ev: pb.Event, now: float) -> str:
    ev.trace.student_id = draw(st.sampled_from(["20230101", "张三", "ps_ABC", "ps_" + "0" * 31, ""]))
    return "trace.student_id"


def _attentive(draw: st.DrawFn, ev: pb.Event, now: float) -> str:
    ev.observation.attentive = ev.observation.present + draw(st.integers(1, 100))
    return "observation.attentive"


_BAD_ENUM = st.one_of(st.just(0), st.integers(50, 2**31 - 1))
_GENERIC: list[Mutation] = [
    _set("event_id", st.sampled_from(["xyz", "", "00000000-0000-0000-0000-000000000000", "{abc}"])),
    _mutate_id("school_id"),
    _mutate_id("classroom_id"),
    _mutate_id("device_id"),
    _mutate_id("lesson_id", empty_ok=True),
    _set("device_kind", _BAD_ENUM),
    _occurred,
    _no_payload,
]
_BY_PAYLOAD: dict[str, list[Mutation]] = {
    "lesson": [
        _set("lesson.phase", _BAD_ENUM),
        _set("lesson.enrolled", st.integers(MAX_PRESENT + 1, 10**6)),
        _set("lesson.teacher_id", st.sampled_from(["a b", "t/1"])),
    ],
    "teaching": [
        _set("teaching.kind", _BAD_ENUM),
        _set("teaching.duration_ms", st.one_of(st.just(0), st.integers(MAX_DURATION_MS + 1, 2**32 - 1))),
        _set("teaching.confidence", st.sampled_from([1.5, -0.1, float("nan"), float("inf")])),
    ],
    "observation": [_set("observation.present", st.integers(MAX_PRESENT + 1, 2**32 - 1)), _attentive],
    "trace": [_raw_student, _set("trace.verb", _BAD_ENUM), _set("trace.context", st.integers(50, 1000))],
    "heartbeat": [
        _set("heartbeat.interval_s", st.just(0)),
        _set("heartbeat.battery_pct", st.sampled_from([-1.0, 100.5, float("nan")])),
        _set("heartbeat.cpu_pct", st.sampled_from([-1.0, 250.0])),
    ],
}


@st.composite
def invalid_events(draw: st.DrawFn, now: float = NOW) -> tuple[pb.Event, str]:
    """A valid event with exactly one rule broken, and the field validation must report."""
    event = draw(events(now=now))
    kind = event.WhichOneof("payload")
    assert kind is not None
    mutations = _GENERIC + _BY_PAYLOAD[kind]
    if kind == "lesson":  # lesson events need their lesson_id: clearing it is its own error
        mutations = [m for m in mutations if m is not _GENERIC[4]] + [_set("lesson_id", st.just(""))]
    field = draw(st.sampled_from(mutations))(draw, event, now)
    return event, field
