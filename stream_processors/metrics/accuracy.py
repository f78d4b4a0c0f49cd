"""answers and answer_accuracy (DESIGN §7): first ANSWERED attempt per (student, item).

The first attempt is the one with the smallest ``(occurred_at, event_id)``: occurred_at as the
definition says, the event_id breaking ties so the choice never depends on arrival order. Keeping
the minimum is idempotent, so the structure is correct under any order of arrival.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AccuracyResult", "FirstAttempts"]


@dataclass(frozen=True)
class AccuracyResult:
    """``answers`` first attempts of which ``correct`` were correct; accuracy = correct / answers."""

    answers: int
    correct: int

    @property
    def accuracy(self) -> float:
        """correct ÷ answers, 0.0 when nothing was answered."""
        return self.correct / self.answers if self.answers else 0.0


class FirstAttempts:
    """The earliest ANSWERED trace per (student, item); ungraded answers count as not correct."""

    __slots__ = ("attempts",)

    def __init__(self, attempts: dict[str, tuple[int, str, int]] | None = None) -> None:
        # key "student|item" → (occurred_ns, event_id, correct as 0/1)
        self.attempts: dict[str, tuple[int, str, int]] = attempts if attempts is not None else {}

    def offer(self, student: str, item: str, occurred_ns: int, event_id: str, correct: bool) -> bool:
        """Record an answer; returns True when it is now the first attempt of its (student, item)."""
        key = f"{student}|{item}"
        current = self.attempts.get(key)
        if current is not None and (current[0], current[1]) <= (occurred_ns, event_id):
            return False
        self.attempts[key] = (occurred_ns, event_id, 1 if correct else 0)
        return True

    def result(self) -> AccuracyResult:
        """The number of first attempts and how many of them were correct."""
        correct = sum(1 for a in self.attempts.values() if a[2])
        return AccuracyResult(len(self.attempts), correct)
