"""participation_rate and hand_raises (docs/DESIGN.md §7): what a lesson's LearningTraces count."""

from __future__ import annotations

from collections.abc import Iterable

from classtrace.v1 import events_pb2 as pb

HAND_RAISED = pb.LearningTrace.VERB_HAND_RAISED

__all__ = ["hand_raises", "participation_rate"]


def participation_rate(distinct_students: int, enrolled: int) -> float:
    """``distinct_students / enrolled``; 0.0 when enrolled is unknown (0).

    Not clamped: more active students than enrolled is reported as it is (> 1), since it points at
    a wrong roster rather than something the metric should hide.
    """
    if enrolled <= 0:
        return 0.0
    return distinct_students / enrolled


def hand_raises(verbs: Iterable[int]) -> int:
    """The number of HAND_RAISED traces (the camera's HAND_RAISING counts are a window series)."""
    return sum(1 for verb in verbs if verb == HAND_RAISED)
