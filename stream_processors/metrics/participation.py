"""participation_rate (DESIGN §7): distinct students with any LearningTrace ÷ the lesson's enrolled."""

from __future__ import annotations

__all__ = ["participation_rate"]


def participation_rate(distinct_students: int, enrolled: int) -> float:
    """``distinct_students / enrolled``; 0.0 when enrolled is unknown (0).

    Not clamped: more active students than enrolled is reported as it is (> 1), since it points at
    a wrong roster rather than something the metric should hide.
    """
    if enrolled <= 0:
        return 0.0
    return distinct_students / enrolled
