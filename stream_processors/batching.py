"""The worker's batches: a Faust ``Stream`` subclass, set with Faust's ``Stream=`` app setting.

:class:`BatchingStream` is what every stream of the worker's app is (``faust.App(...,
Stream=BatchingStream)`` in :func:`stream_processors.app.build_app`; Faust's ``App.stream``
builds ``conf.Stream``). Its :meth:`~BatchingStream.take_batches` is Faust's own
``Stream.take_events(max_, within)``, unchanged: the agent gets lists of events, at most
``max_`` of them, or what has come within ``within`` seconds (Faust's timer restarts after each
batch, so a record waits at most about ``within`` plus the previous batch's processing); each
batch is acknowledged when the agent asks for the next one, after it has processed and written
it; and Faust's own ``finally`` restores the stream's acks and removes its buffering processor
when the agent stops or leaves the loop.

Nothing else is added: an earlier fork of ``take_events`` also ended a batch as soon as the
consumer had delivered everything fetched (read through Faust's private ``_read_offset``), to
spare the last batch of a backlog its wait for ``within``. Public API gives no way to end
``take_events``' wait early, so that optimisation went with the fork; its cost is at most one
``within`` (0.2 s, the default ``flush_interval_s``) per catch-up.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

import faust

__all__ = ["BatchingStream"]


class BatchingStream(faust.Stream[Any]):
    """A ``faust.Stream`` that hands its events to the agent in batches (module docstring)."""

    def take_batches(self, max_: int, within: float) -> AsyncGenerator[Sequence[Any], None]:
        """Faust's ``take_events(max_, within)``: lists of at most ``max_`` events, acked when the
        next list is asked for, with Faust's clean-up when the loop ends."""
        batches: AsyncGenerator[Sequence[Any], None] = self.take_events(max_, within)
        return batches
