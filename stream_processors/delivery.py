"""The one Faust shim: ``Consumer.perform_seek`` stops the flow before it seeks.

It closes a race in Faust's recovery (faust-streaming 0.15.3, pinned in ``pyproject.toml``)
that loses delivered records; the bug report, with the exact functions, is
``docs/upstream/faust-seek-race.md``. In short: after a rebalance, ``Recovery._restart_recovery``
resumes the flow (``app.flow_control.resume()``, ``consumer.resume_flow()``) and then
``Recovery.on_recovery_completed`` resumes the stream partitions, awaits
``Consumer.perform_seek`` (back to the committed offsets) and calls ``app.flow_control.resume()``
again, which clears every stream's queue. Records the running fetcher delivered during that
await are cleared and never fetched again (the seek is already behind them): the worker never
processes them, and the partition's committed offset stops at the first of them until a
restart. The fault test in which a worker joins mid-lesson found it (the joining worker never
saw its lessons end).

With the flow stopped for the seek, nothing is delivered while the positions go back; what was
delivered before is cleared by the caller's ``flow_control.resume()`` and fetched again from the
committed offsets (records already processed come twice: the processor's dedup absorbs them).
Every caller resumes the flow right after the seek (``Recovery._resume_streams``,
``Recovery.on_recovery_completed``); the third, ``Consumer.getmany``, seeks only when the flow
is already stopped.

:data:`SEEK_SHIM` counts how often the shim ran and how often it found the flow running (the
race's window) and stopped it; each such run is logged, and the rebalance fault test asserts
that it happened: if a Faust release stops calling ``perform_seek`` with the flow running (the
bug fixed upstream, or the recovery reworked), that test fails and the shim can go.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

__all__ = ["SEEK_SHIM", "SeekShimCounts", "seek_with_flow_stopped"]

logger = logging.getLogger(__name__)


@dataclass
class SeekShimCounts:
    """How often the patched ``Consumer.perform_seek`` ran in this process."""

    calls: int = 0
    """Seeks through the shim."""
    flow_stopped: int = 0
    """Seeks that found the flow running and stopped it first: the race the shim closes."""


SEEK_SHIM = SeekShimCounts()


def seek_with_flow_stopped() -> None:
    """Patch Faust's ``Consumer.perform_seek`` as the module docstring says (once per process)."""
    from faust.transport.consumer import Consumer

    consumer_cls: Any = Consumer
    if getattr(consumer_cls, "_classtrace_seek", False):
        return
    original = consumer_cls.perform_seek

    @functools.wraps(original)  # Faust's own stays reachable as perform_seek.__wrapped__
    async def perform_seek(self: Any) -> None:
        SEEK_SHIM.calls += 1
        if self.flow_active:
            self.stop_flow()
            SEEK_SHIM.flow_stopped += 1
            logger.info(
                "perform_seek: flow stopped for the seek to committed offsets (seek_shim calls=%d "
                "flow_stopped=%d)",
                SEEK_SHIM.calls,
                SEEK_SHIM.flow_stopped,
            )
        await original(self)

    consumer_cls.perform_seek = perform_seek
    consumer_cls._classtrace_seek = True
