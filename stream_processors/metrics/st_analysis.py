"""S-T analysis (docs/DESIGN.md §7): sample codes, st_rt, st_ch and the teaching mode of a lesson.

A lesson's teaching segments are kept as the *union* of its T-set segments (sorted, disjoint
half-open intervals in epoch ms). A sample is T exactly when the union covers it, so the union
is all the S-T state a lesson needs: it is small, and adding a segment twice or in another order
yields the same union — re-delivery and shuffling cannot change the codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from classtrace.v1 import events_pb2 as pb

__all__ = [
    "SAMPLE_MS",
    "T_KINDS",
    "STResult",
    "add_interval",
    "analyse",
    "lesson_st",
    "sample_count",
    "st_codes",
    "st_result",
    "teaching_mode",
]

SAMPLE_MS = 30_000
"""Samples are taken every 30 s from the lesson's start."""

_TB = pb.TeachingBehavior
T_KINDS: frozenset[int] = frozenset(
    {
        _TB.KIND_LECTURING,
        _TB.KIND_QUESTIONING,
        _TB.KIND_BOARD_WRITING,
        _TB.KIND_DEMONSTRATING,
        _TB.KIND_FEEDBACK,
        _TB.KIND_ROLL_CALL,
    }
)
"""Teaching kinds in which the teacher acts; PATROLLING, GUIDING and LISTENING are not T."""


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def add_interval(intervals: list[list[int]], start: int, end: int) -> bool:
    """Merge ``[start, end)`` into the sorted, disjoint ``intervals`` in place.

    Returns True when the union grew. Touching intervals (``[a, b)`` and ``[b, c)``) merge, since
    together they cover exactly ``[a, c)``.
    """
    if end <= start:
        return False
    lo = 0
    n = len(intervals)
    while lo < n and intervals[lo][1] < start:
        lo += 1
    hi = lo
    new_start, new_end = start, end
    while hi < n and intervals[hi][0] <= end:
        new_start = min(new_start, intervals[hi][0])
        new_end = max(new_end, intervals[hi][1])
        hi += 1
    if hi - lo == 1 and intervals[lo] == [new_start, new_end]:
        return False  # already covered
    intervals[lo:hi] = [[new_start, new_end]]
    return True


def sample_count(start_ms: int, end_ms: int, *, inclusive: bool = False) -> int:
    """Number of instants ``start + k·30 s`` before ``end`` (or at or before it, when inclusive).

    The final summary samples while t_k < lesson end. Live values sample up to the latest event
    time seen, inclusive: the instant that event occurred at has been observed.
    """
    if end_ms < start_ms or (end_ms == start_ms and not inclusive):
        return 0
    if inclusive:
        return (end_ms - start_ms) // SAMPLE_MS + 1
    return _ceil_div(end_ms - start_ms, SAMPLE_MS)


def st_codes(start_ms: int, n_samples: int, t_intervals: Iterable[Sequence[int]]) -> str:
    """The S-T sequence: ``'T'`` where a T segment covers ``start + k·30 s``, else ``'S'``."""
    codes = bytearray(b"S" * n_samples)
    for seg_start, seg_end in t_intervals:
        # t_k in [seg_start, seg_end)  <=>  ceil((seg_start-start)/30s) <= k < ceil((seg_end-start)/30s)
        k0 = max(0, _ceil_div(seg_start - start_ms, SAMPLE_MS))
        k1 = min(n_samples, _ceil_div(seg_end - start_ms, SAMPLE_MS))
        if k1 > k0:
            codes[k0:k1] = b"T" * (k1 - k0)
    return codes.decode("ascii")


@dataclass(frozen=True)
class STResult:
    """The S-T figures of a code sequence."""

    codes: str
    samples: int
    t_samples: int
    runs: int
    st_rt: float
    st_ch: float
    mode: str


def teaching_mode(samples: int, t_samples: int, runs: int) -> str:
    """'practice' if rt ≤ 0.3, else 'lecture' if rt ≥ 0.7, else 'dialogue' if ch ≥ 0.4, else 'mixed'.

    Compared on integers (10·N_T ≤ 3·N …) so the boundaries 0.3 / 0.7 / 0.4 are exact, not at
    the mercy of float rounding. With no samples rt = 0, hence 'practice'.
    """
    if 10 * t_samples <= 3 * samples:
        return "practice"
    if 10 * t_samples >= 7 * samples:
        return "lecture"
    if 10 * (runs - 1) >= 4 * samples:
        return "dialogue"
    return "mixed"


def analyse(codes: str) -> STResult:
    """st_rt = N_T / N, st_ch = (g − 1) / N and the mode of an S-T sequence (0 when N = 0)."""
    n = len(codes)
    n_t = codes.count("T")
    runs = 0
    prev = ""
    for code in codes:
        if code != prev:
            runs += 1
            prev = code
    rt = n_t / n if n else 0.0
    ch = (runs - 1) / n if n else 0.0
    return STResult(codes, n, n_t, runs, rt, ch, teaching_mode(n, n_t, runs))


def st_result(start_ms: int, n_samples: int, t_union: Iterable[Sequence[int]]) -> STResult:
    """The S-T figures of ``n_samples`` samples from ``start_ms`` against a union of T time."""
    return analyse(st_codes(start_ms, n_samples, t_union))


def lesson_st(start_ms: int, end_ms: int, segments: Iterable[tuple[int, int, int]]) -> STResult:
    """A finished lesson's S-T figures from its TeachingBehavior ``(kind, occurred_ms,
    duration_ms)`` segments, in any order, duplicates included."""
    union: list[list[int]] = []
    for kind, occurred, duration in segments:
        if kind in T_KINDS:
            add_interval(union, occurred, occurred + duration)
    return st_result(start_ms, sample_count(start_ms, end_ms), union)
