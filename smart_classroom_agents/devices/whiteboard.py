"""The interactive whiteboard: board-writing segments, inside T windows like the audio unit's."""

from __future__ import annotations

import random

from classtrace.v1 import events_pb2 as pb
from smart_classroom_agents.devices.audio import inner_segments
from smart_classroom_agents.devices.base import Device, Emission
from smart_classroom_agents.scripts import Window
from smart_classroom_agents.timetable import Lesson

__all__ = ["board_writing"]


def board_writing(device: Device, lesson: Lesson, plan: list[Window], rng: random.Random) -> list[Emission]:
    """The teacher writes on the board in about a third of the T windows."""
    return inner_segments(device, lesson, plan, pb.TeachingBehavior.KIND_BOARD_WRITING, 0.35, rng)
