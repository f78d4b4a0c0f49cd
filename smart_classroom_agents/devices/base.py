"""What every simulated device shares: its identity and the envelope of the events it emits."""

from __future__ import annotations

from dataclasses import dataclass

from classtrace.codec import ms_to_ts
from classtrace.v1 import events_pb2 as pb

__all__ = ["FIRST", "LAST", "NORMAL", "Device", "Emission", "segment"]

# Tie-break among emissions due at the same millisecond: a lesson opens before anything happens
# in it, and closes after everything else of that instant.
FIRST, NORMAL, LAST = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Device:
    """A device of one classroom: the ids a gateway token is bound to."""

    school_id: str
    classroom_id: str
    device_id: str
    kind: pb.DeviceKind.ValueType

    def event(self, lesson_id: str, occurred_ms: int) -> pb.Event:
        """An event of this device without id and seq (assigned in emission order later)."""
        event = pb.Event(
            school_id=self.school_id,
            classroom_id=self.classroom_id,
            device_id=self.device_id,
            lesson_id=lesson_id,
            device_kind=self.kind,
        )
        ms_to_ts(occurred_ms, event.occurred_at)
        return event


@dataclass(slots=True)
class Emission:
    """An event and the simulated instant the device sends it (≥ its occurred_at)."""

    emit_ms: int
    order: int
    event: pb.Event


def segment(
    device: Device,
    lesson_id: str,
    teacher_id: str,
    kind: pb.TeachingBehavior.Kind.ValueType,
    start_ms: int,
    end_ms: int,
    confidence: float,
) -> Emission:
    """A TeachingBehavior [start_ms, end_ms), emitted when it ends (its duration is known then)."""
    event = device.event(lesson_id, start_ms)
    event.teaching.kind = kind
    event.teaching.teacher_id = teacher_id
    event.teaching.duration_ms = end_ms - start_ms
    event.teaching.confidence = confidence
    return Emission(end_ms, NORMAL, event)
