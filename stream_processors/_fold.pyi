"""Types of the C extension stream_processors._fold (stream_processors/_fold.c)."""

from collections.abc import Callable
from typing import Any

MAX_SPAN: int
WINDOW_MS: int
HIST_SHIFT: int
BEHAVIOR_HAND_RAISING: int
VERB_HAND_RAISED: int
VERB_ANSWERED: int
T_KIND_MASK: int

def fold_events(
    data: bytes,
    now_s: float,
    classroom_id: str,
    mark_ms: int,
    window_of: Callable[[int, int], tuple[str, Any] | None],
    lesson_of: Callable[[str], tuple[str, Any]],
    book_of: Callable[[], tuple[dict[str, list[Any]], set[str], set[str]]],
    dirty_windows: set[str],
    dirty_lessons: set[str],
    /,
) -> tuple[int, int, int, int] | None: ...
def window_outputs(window: Any, /) -> tuple[bytes, bytes]: ...
