"""One simulated classroom: its devices, and the merged, numbered stream of what they emit.

Content (who does what, when, relative to the timetable) comes from ``seed`` alone; event ids come
from a second generator that also mixes in the run's anchor time, so re-running a seed yields the
same lessons but never reuses an event id — a reused id would be collapsed with the earlier run's
event by the idempotent pipeline.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from classtrace.v1 import events_pb2 as pb
from smart_classroom_agents.devices import audio, camera, tablet, teacher_app, whiteboard
from smart_classroom_agents.devices.base import Device, Emission
from smart_classroom_agents.devices.heartbeat import HeartbeatSchedule
from smart_classroom_agents.scripts import sample_count, st_codes, windows
from smart_classroom_agents.timetable import Classroom, Lesson

__all__ = ["ClassroomDevices", "classroom_devices", "classroom_stream"]

_D = pb.DeviceKind


@dataclass(frozen=True, slots=True)
class ClassroomDevices:
    """The devices of one classroom (each needs its own gateway token)."""

    teacher_app: Device
    camera: Device
    audio: Device
    tablets: Device
    whiteboard: Device

    def all(self) -> tuple[Device, ...]:
        """Every device, in a stable order."""
        return (self.teacher_app, self.camera, self.audio, self.tablets, self.whiteboard)


def classroom_devices(room: Classroom) -> ClassroomDevices:
    """Device ids ``<classroom>-<role>``; ids stay stable across runs so tokens can be reused."""

    def dev(role: str, kind: pb.DeviceKind.ValueType) -> Device:
        return Device(room.school_id, room.classroom_id, f"{room.classroom_id}-{role}", kind)

    return ClassroomDevices(
        teacher_app=dev("app", _D.DEVICE_KIND_TEACHER_APP),
        camera=dev("cam", _D.DEVICE_KIND_CAMERA),
        audio=dev("mic", _D.DEVICE_KIND_AUDIO),
        tablets=dev("tab", _D.DEVICE_KIND_TABLET),
        whiteboard=dev("wb", _D.DEVICE_KIND_WHITEBOARD),
    )


def _lesson_emissions(
    room: Classroom,
    devs: ClassroomDevices,
    lesson: Lesson,
    students: list[tablet.Student],
    key: bytes,
    rng: random.Random,
) -> list[Emission]:
    codes = st_codes(lesson.style, sample_count(lesson.duration_ms), rng)
    plan = windows(lesson.start_ms, lesson.end_ms, codes, rng)
    present = tablet.attendance(students, rng)
    out = teacher_app.lesson_lifecycle(devs.teacher_app, lesson)
    out += camera.teaching_segments(devs.camera, lesson, plan, rng)
    out += camera.observations(devs.camera, lesson, plan, len(present), rng)
    out += audio.teacher_talk(devs.audio, lesson, plan, rng)
    out += whiteboard.board_writing(devs.whiteboard, lesson, plan, rng)
    out += tablet.learning_traces(devs.tablets, lesson, plan, present, key, rng)
    return out


def _periods(room: Classroom, seed: int, key: bytes) -> Iterator[list[Emission]]:
    """Emissions period by period: lesson k's period runs from its start to the next lesson's.

    Every emission of a lesson is due within [start, end], so sorting each period on its own gives
    the classroom's global emission order while holding one lesson in memory at a time.
    """
    if not room.lessons:
        return
    devs = classroom_devices(room)
    rng = random.Random(f"content:{seed}:{room.index}")
    students = tablet.roster(room.school_id, room.classroom_id, room.enrolled, rng)
    first = room.lessons[0].start_ms - 60_000
    beats = [
        HeartbeatSchedule(d, room.lessons, first, random.Random(f"hb:{seed}:{room.index}:{d.device_id}"))
        for d in devs.all()
    ]
    bounds = [first, *(lesson.start_ms for lesson in room.lessons[1:]), room.end_ms + 60_000]
    for k, lesson in enumerate(room.lessons):
        out = _lesson_emissions(room, devs, lesson, students, key, rng)
        lo, hi = (bounds[k], bounds[k + 1]) if k else (first, bounds[1])
        for schedule in beats:
            out += schedule.between(lo, hi)
        yield out


def classroom_stream(room: Classroom, seed: int, key: bytes, id_salt: int) -> Iterator[tuple[int, pb.Event]]:
    """``(emit_ms, event)`` of the classroom in emission order, with event_id and seq set.

    ``key`` is the pseudonym key of the room's school (:func:`classtrace.ids.school_pseudonym_key`),
    the one its tablets are provisioned with.

    ``id_salt`` (normally the run's anchor time) seeds the event ids; ``seq`` counts per device
    from 1 in emission order, as a device's counter would (an EdgeProducer renumbers from its
    own persisted counter).
    """
    ids = random.Random(f"ids:{seed}:{id_salt}:{room.index}")
    seqs: dict[str, int] = {}
    for emissions in _periods(room, seed, key):
        emissions.sort(key=lambda e: (e.emit_ms, e.order))
        for emission in emissions:
            event = emission.event
            event.event_id = str(uuid.UUID(int=ids.getrandbits(128), version=4))
            seqs[event.device_id] = seq = seqs.get(event.device_id, 0) + 1
            event.seq = seq
            yield emission.emit_ms, event
