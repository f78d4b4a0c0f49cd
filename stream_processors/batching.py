"""The worker's batches: Faust's ``Stream.take_events``, ended early when the backlog is read.

``take_events(max_, within)`` yields when ``max_`` events are buffered or when its ``within``
timer, which runs from the stream's start, next fires. At the end of a backlog that leaves the
last batch waiting out ``within`` for records that are not there: at 0.2 s, a fifth of the time
bench/processors.py's 200k events take, and the same wait after every catch-up (a restart, a
rebalance, an outage of the worker).

:func:`take_batches` has the same acks (after the batch is processed, when the agent asks for
the next one) and the same strict maximum. ``within`` counts from a batch's first event: the
longest any record waits, or twice that while a backlog is being read (a batch that is not
caught up at ``within`` fills on for one more ``within``: fewer, fuller batches). A batch ends
early as soon as the stream's queue is empty and the consumer has delivered every record up to
the high watermarks it last fetched (``caught_up``) — if it holds at least a quarter of
``max_``, or if the batch before it did (the tail of a backlog). Other small batches still wait
for ``within``: under a steady trickle, tiny batches would write each touched lesson and window
far more often for little gain in latency.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from mode.utils.futures import notify

__all__ = ["consumer_caught_up", "take_batches"]


async def take_batches(
    stream: Any, max_: int, within: float, caught_up: Callable[[], bool]
) -> AsyncIterator[list[Any]]:
    """Yield lists of the stream's events: at ``max_`` events, ``within`` seconds after a batch's
    first event (2 × ``within`` if not caught up then), or as soon as ``caught_up()`` says
    nothing more has been fetched — for a batch of ≥ ``max_ // 4`` events, or any batch right
    after such a one (the tail of a backlog)."""
    events: list[Any] = []
    early = max(1, max_ // 4)
    draining = False  # the last batch held ≥ early events: a backlog is being read
    loop = stream.loop
    first_at = 0.0
    started = asyncio.Event()  # the batch has its first event
    buffer_full = asyncio.Event()
    buffer_consumed = asyncio.Event()
    buffer_consuming: asyncio.Future[None] | None = None
    channel_it = stream.channel.__aiter__()
    queue = channel_it.queue

    async def add_to_buffer(value: Any) -> Any:
        nonlocal buffer_consuming, first_at
        try:
            if buffer_consuming is not None:  # the agent is processing a batch: wait for it
                try:
                    await buffer_consuming
                finally:
                    buffer_consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("take buffer found current_event is None")
            events.append(event)
            size = len(events)
            if size == 1:
                first_at = loop.time()
                started.set()
            if size >= max_:
                buffer_full.set()
                buffer_consumed.clear()
                await stream.wait(buffer_consumed)  # strict: never more than max_ in a batch
            elif (size >= early or draining) and not queue.qsize() and caught_up():
                buffer_full.set()
        except asyncio.CancelledError:  # pragma: no cover - Faust's own handling
            raise
        except Exception as exc:  # as take_events: a failing buffer crashes the stream
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False  # acked below, once the agent has processed the batch
    stream.add_processor(add_to_buffer)
    stream._enable_passive(channel_it)
    while not stream.should_stop:
        if not events:
            await stream.wait_for_stopped(started)
            continue
        remaining = first_at + within - loop.time()
        if remaining > 0:
            await stream.wait_for_stopped(buffer_full, timeout=remaining)
        if not buffer_full.is_set() and not stream.should_stop and (queue.qsize() or not caught_up()):
            # A backlog is being read: fill on (until it is read or the batch full), once more
            # at most — fewer, fuller batches write each touched value fewer times.
            await stream.wait_for_stopped(buffer_full, timeout=within)
        buffer_consuming = loop.create_future()
        draining = len(events) >= early
        try:
            yield list(events)
        finally:
            for event in events:
                await stream.ack(event)
            events.clear()
            notify(buffer_consuming)
            started.clear()
            buffer_full.clear()
            buffer_consumed.set()


def consumer_caught_up(app: Any, topic: str) -> Callable[[], bool]:
    """``caught_up`` for :func:`take_batches`: every assigned partition of ``topic`` has been
    delivered up to the high watermark of its last fetch (Faust's read offset is the last
    delivered offset; the watermark is one past the last record)."""

    def caught_up() -> bool:
        consumer = app.consumer
        read_offsets = consumer._read_offset
        for tp in consumer.assignment():
            if tp.topic != topic:
                continue
            try:
                high = consumer.highwater(tp)
            except AssertionError:  # aiokafka: not (or no longer) assigned there: a rebalance
                return False
            read = read_offsets.get(tp)
            if read is not None and high is not None and read + 1 < high:
                return False
        return True

    return caught_up
