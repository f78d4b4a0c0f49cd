"""Capped exponential backoff with full jitter (AWS architecture blog's "full jitter").

Full jitter spreads the retries of a whole school's devices after a network outage, instead of
having them all come back in lock-step and knock the gateway over again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """``next_delay()`` grows base·2^attempt up to ``cap`` seconds, drawn uniformly below it."""

    base: float = 0.2
    cap: float = 30.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self, at_least: float | None = None) -> float:
        """The delay before the next retry; ``at_least`` honours a peer's Retry-After."""
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        delay = self.rng.uniform(0.0, ceiling)
        return max(delay, at_least or 0.0)

    def reset(self) -> None:
        """After a success: the next failure starts small again."""
        self.attempt = 0
