"""attention_rate (docs/DESIGN.md §7): the mean over observations of attentive / present.

Observations are kept as a histogram of ``(attentive, present)`` pairs rather than a running float
sum: a float sum depends on the order of its terms, a histogram summed with ``math.fsum`` (exact,
then rounded once) does not. With present ≤ 500 a class produces a few dozen distinct pairs, so the
state stays small.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["AttentionHistogram", "attention_rate"]

_SHIFT = 1024  # key = attentive * 1024 + present; present and attentive are ≤ 500 (validation)


class AttentionHistogram:
    """Counts of observations by (attentive, present); observations with present = 0 are skipped."""

    __slots__ = ("counts",)

    def __init__(self, counts: dict[int, int] | None = None) -> None:
        self.counts: dict[int, int] = counts if counts is not None else {}

    def add(self, attentive: int, present: int) -> bool:
        """Count one observation; returns False (nothing counted) when present is 0."""
        if present <= 0:
            return False
        key = attentive * _SHIFT + present
        self.counts[key] = self.counts.get(key, 0) + 1
        return True

    @property
    def observations(self) -> int:
        """How many observations (with present > 0) were counted."""
        return sum(self.counts.values())

    def rate(self) -> float | None:
        """The mean of attentive / present, or None without any observation."""
        total = 0
        terms: list[float] = []
        for key, n in self.counts.items():
            attentive, present = divmod(key, _SHIFT)
            terms.append(n * attentive / present)
            total += n
        if not total:
            return None
        return math.fsum(terms) / total

    def to_list(self) -> list[tuple[int, int]]:
        """Serialisable form (pairs encode as JSON arrays), sorted so equal histograms encode to
        equal bytes."""
        return sorted(self.counts.items())

    @classmethod
    def from_list(cls, items: Iterable[Sequence[int]]) -> AttentionHistogram:
        """Inverse of :meth:`to_list` (pairs, as to_list gives them or as read from JSON)."""
        return cls({k: v for k, v in items})


def attention_rate(observations: Iterable[tuple[int, int]]) -> float | None:
    """attention_rate of ``(attentive, present)`` observations; None without one that counts."""
    histogram = AttentionHistogram()
    for attentive, present in observations:
        histogram.add(attentive, present)
    return histogram.rate()
