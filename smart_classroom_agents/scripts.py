"""Teaching-style scripts: the S-T code of every 30 s sample decided first, behaviour built around it.

S-T analysis (docs/DESIGN.md §7) samples a lesson at t_k = start + k·30 s and codes a sample T when
a T-set teaching segment covers it. A script therefore starts from the code sequence it wants —
long T runs for a lecture, long S runs for practice, short alternating runs for a dialogue, long
alternating blocks for a mixed lesson — with margins away from the mode thresholds (0.3, 0.7,
0.4), and only then lays teacher behaviour over the lesson as a partition into *windows*, one per
run of equal codes. The boundary between run r (ending at sample j) and run r+1 is drawn from
(t_j, t_{j+1}], so each window covers exactly its run's samples: the mode is right by
construction, whatever the devices later add inside a window.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from enum import StrEnum

from classtrace.v1 import events_pb2 as pb

__all__ = [
    "SAMPLE_MS",
    "STYLES",
    "S_KINDS",
    "T_KINDS",
    "Style",
    "Window",
    "sample_count",
    "st_codes",
    "windows",
]

SAMPLE_MS = 30_000
_K = pb.TeachingBehavior
T_KINDS = frozenset(
    {
        _K.KIND_LECTURING,
        _K.KIND_QUESTIONING,
        _K.KIND_BOARD_WRITING,
        _K.KIND_DEMONSTRATING,
        _K.KIND_FEEDBACK,
        _K.KIND_ROLL_CALL,
    }
)
S_KINDS = frozenset({_K.KIND_PATROLLING, _K.KIND_GUIDING, _K.KIND_LISTENING})


class Style(StrEnum):
    """The teaching style a lesson is scripted in; its value is the expected ``teaching_mode``."""

    LECTURE = "lecture"
    PRACTICE = "practice"
    DIALOGUE = "dialogue"
    MIXED = "mixed"


STYLES: tuple[Style, ...] = (Style.LECTURE, Style.PRACTICE, Style.DIALOGUE, Style.MIXED)

# (T run lengths, S run lengths) in samples, and the accepted (rt, ch) box — inside the mode's
# region with margins, so jitter elsewhere can never tip a lesson into another mode.
_RUNS: dict[Style, tuple[tuple[int, int], tuple[int, int]]] = {
    Style.LECTURE: ((5, 12), (1, 2)),
    Style.PRACTICE: ((1, 2), (4, 10)),
    Style.DIALOGUE: ((1, 2), (1, 2)),
    Style.MIXED: ((3, 8), (3, 8)),
}
_BOX: dict[Style, tuple[float, float, float, float]] = {
    Style.LECTURE: (0.76, 1.0, 0.0, 1.0),
    Style.PRACTICE: (0.0, 0.25, 0.0, 1.0),
    Style.DIALOGUE: (0.36, 0.64, 0.46, 1.0),
    Style.MIXED: (0.36, 0.64, 0.0, 0.34),
}


@dataclass(frozen=True, slots=True)
class Window:
    """A stretch [start_ms, end_ms) of one run of equal S-T codes (``teacher`` True = T)."""

    start_ms: int
    end_ms: int
    teacher: bool
    first_sample: int
    last_sample: int


def sample_count(duration_ms: int) -> int:
    """N of §7: instants start + k·30 s strictly before the end."""
    return -(-duration_ms // SAMPLE_MS)


def _fits(style: Style, codes: list[bool]) -> bool:
    n = len(codes)
    rt = sum(codes) / n
    runs = 1 + sum(1 for a, b in itertools.pairwise(codes) if a != b)
    ch = (runs - 1) / n
    lo_rt, hi_rt, lo_ch, hi_ch = _BOX[style]
    return lo_rt <= rt <= hi_rt and lo_ch <= ch <= hi_ch


def st_codes(style: Style, n: int, rng: random.Random) -> list[bool]:
    """A code per sample (True = T) whose S-T mode is ``style``, with margins (see module doc).

    Every lesson opens with the teacher acting (roll call, introduction). Raises ValueError when
    ``n`` is too small for the style (fewer than 6 samples).
    """
    if n < 6:
        raise ValueError(f"{n} S-T samples are too few to script a {style} lesson (need ≥ 6)")
    (t_lo, t_hi), (s_lo, s_hi) = _RUNS[style]
    for _ in range(2000):
        codes: list[bool] = []
        teacher = True
        while len(codes) < n:
            lo, hi = (t_lo, t_hi) if teacher else (s_lo, s_hi)
            codes.extend([teacher] * rng.randint(lo, min(hi, max(lo, n - 1))))
            teacher = not teacher
        codes = codes[:n]
        if _fits(style, codes):
            return codes
    raise ValueError(f"could not script a {style} lesson of {n} samples")


def windows(start_ms: int, end_ms: int, codes: list[bool], rng: random.Random) -> list[Window]:
    """Partition [start_ms, end_ms) into one window per run of ``codes``.

    A boundary after sample j lies in (t_j + 5 s, t_{j+1}]: strictly after the last sample of the
    run it closes and at or before the first sample of the next, so the half-open windows hold
    exactly their runs' samples.
    """
    out: list[Window] = []
    first = 0
    lo = start_ms
    for j in range(len(codes)):
        if j + 1 < len(codes) and codes[j + 1] == codes[j]:
            continue
        if j + 1 == len(codes):
            hi = end_ms
        else:
            hi = start_ms + (j + 1) * SAMPLE_MS - rng.randint(0, SAMPLE_MS - 5_000)
        out.append(Window(lo, hi, codes[j], first, j))
        lo, first = hi, j + 1
    return out
