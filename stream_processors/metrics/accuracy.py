"""answers and answer_accuracy (docs/DESIGN.md §7): first ANSWERED attempt per (student, item).

The first attempt is the one with the smallest ``(occurred_at, event_id)``: occurred_at as the
definition says, the event_id breaking ties so the choice never depends on arrival order. Keeping
the minimum is idempotent, so the structure is correct under any order of arrival.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["AccuracyResult", "FirstAttempts", "first_attempt_accuracy"]


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
    """The earliest ANSWERED trace per (student, item); ungraded answers count as not correct.

    A lesson is written to its changelog after every batch that counts one of its events, and
    its summary computed every second, but its first attempts rarely change once students have
    answered: their JSON and their result are kept until the next change. Whatever writes
    ``attempts`` clears ``_cache`` (:meth:`offer` is the only writer).
    """

    __slots__ = ("_cache", "attempts")

    def __init__(self, attempts: dict[str, tuple[int, str, int]] | None = None) -> None:
        # key "student|item" → (occurred_ns, event_id, correct as 0/1)
        self.attempts: dict[str, tuple[int, str, int]] = attempts if attempts is not None else {}
        self._cache: list[Any] | None = None  # [JSON or None, AccuracyResult or None]

    def offer(self, student: str, item: str, occurred_ns: int, event_id: str, correct: bool) -> bool:
        """Record an answer; returns True when it is now the first attempt of its (student, item)."""
        key = f"{student}|{item}"
        current = self.attempts.get(key)
        if current is not None and (current[0], current[1]) <= (occurred_ns, event_id):
            return False
        self.attempts[key] = (occurred_ns, event_id, 1 if correct else 0)
        self._cache = None
        return True

    def rename_student(self, old: str, new: str) -> bool:
        """Give ``old``'s first attempts to ``new`` (an erased student's stand-in); True if any."""
        prefix = f"{old}|"
        moved = [k for k in self.attempts if k.startswith(prefix)]
        for key in moved:
            self.attempts[f"{new}|{key[len(prefix) :]}"] = self.attempts.pop(key)
        if moved:
            self._cache = None
        return bool(moved)

    def _slots(self) -> list[Any]:
        cache = self._cache
        if cache is None:
            cache = self._cache = [None, None]
        return cache

    def result(self) -> AccuracyResult:
        """The number of first attempts and how many of them were correct."""
        cache = self._slots()
        if cache[1] is None:
            attempts = self.attempts
            cache[1] = AccuracyResult(len(attempts), sum(a[2] for a in attempts.values()))
        return cache[1]  # type: ignore[no-any-return]

    def to_json(self) -> orjson.Fragment:
        """``attempts`` as JSON (keys sorted), ready to embed in an orjson document."""
        cache = self._slots()
        if cache[0] is None:  # tuples encode as arrays
            cache[0] = orjson.Fragment(orjson.dumps(self.attempts, option=orjson.OPT_SORT_KEYS))
        return cache[0]  # type: ignore[no-any-return]


def first_attempt_accuracy(answers: Iterable[tuple[str, str, int, str, bool]]) -> AccuracyResult:
    """answers and answer_accuracy of ANSWERED traces ``(student, item, occurred_ns, event_id,
    correct)``, in any order."""
    attempts = FirstAttempts()
    for student, item, occurred_ns, event_id, correct in answers:
        attempts.offer(student, item, occurred_ns, event_id, correct)
    return attempts.result()
