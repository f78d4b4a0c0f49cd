"""Two fixes to how Faust's consumer hands fetched records to the worker's stream.

Faust's drain loop (``faust.transport.consumer.Consumer._drain_messages``) delivers each record
with ``await self.wait_first(callback(message), self.suspend_flow.wait())``: mode's
``wait_first`` wraps both coroutines, plus the service's stopped and crashed events, in tasks,
waits for the first, then cancels the other three. The race matters only when delivery blocks
(the stream's queue is full) and a rebalance suspends the flow meanwhile: the blocked delivery
is then abandoned. Four tasks and several event-loop turns per record cost ~1.4 µs per event
of bench/processors.py's 100-event records — a third of the worker's time.

:func:`deliver_inline` makes that call run the delivery coroutine one step first. If it
finishes in that step (the queue had room: the usual case), it is done, as the race would
have found. If it waits, it goes on inside Faust's own race, resumed where it stopped, so a
suspended flow still abandons it. Any other ``wait_first`` call is Faust's own.

:func:`seek_with_flow_stopped` closes a race in Faust's recovery that loses delivered records
(faust-streaming issue #596 is the same family). When a rebalance needs no table recovery,
``Recovery._restart_recovery`` resumes the flow first, and ``on_recovery_completed`` then awaits
``Consumer.perform_seek`` (back to the committed offsets) and calls ``flow_control.resume()``,
which clears the streams' queues. Records fetched and delivered during that await are cleared
but not fetched again (the seek is behind them): this worker never processes them, and the
partition's committed offset stops at the first of them. Found with the fault test in which a
worker joins mid-lesson (it then never saw its lessons end). In-place delivery fills the queue
faster and made it frequent; with Faust's race the queue holds records, and can lose them the
same way, when a backlog fills the stream's take buffer.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["deliver_inline", "resume", "seek_with_flow_stopped"]

_EVENT_WAIT = asyncio.Event.wait.__code__


async def resume(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    """Go on with ``coro``, which has already run to its first suspension yielding
    ``waiting_on``: what ``await coro`` would have done from there (sends, throws, result)."""
    return await _drive(coro, waiting_on)


@types.coroutine
def _drive(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    to_yield = waiting_on
    while True:
        try:
            sent = yield to_yield
        except BaseException as exc:  # cancellation included: the coroutine decides
            try:
                to_yield = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                to_yield = coro.send(sent)
            except StopIteration as stop:
                return stop.value


def _is_delivery(consumer: Any, coros: tuple[Any, ...], timeout: Any) -> bool:
    """The drain loop's call: (delivery coroutine, ``consumer.suspend_flow.wait()``)."""
    if len(coros) != 2 or timeout is not None:
        return False
    delivery, flow = coros
    return (
        isinstance(delivery, types.CoroutineType)
        and isinstance(flow, types.CoroutineType)
        and flow.cr_code is _EVENT_WAIT
        and flow.cr_frame is not None
        and flow.cr_frame.f_locals.get("self") is consumer.suspend_flow
    )


def deliver_inline() -> None:
    """Patch Faust's Consumer.wait_first as the module docstring says (once per process)."""
    from faust.transport.consumer import Consumer
    from mode.services import WaitResults

    consumer_cls: Any = Consumer
    if getattr(consumer_cls, "_classtrace_inline", False):
        return
    original = consumer_cls.wait_first

    async def wait_first(self: Any, *coros: Any, timeout: Any = None) -> Any:
        if not _is_delivery(self, coros, timeout) or self.suspend_flow.is_set():
            return await original(self, *coros, timeout=timeout)
        delivery, flow = coros
        try:
            waiting_on = delivery.send(None)
        except StopIteration as done:
            flow.close()  # never started: closing it spares a "never awaited" warning
            return WaitResults([delivery], [done.value], False)
        except BaseException:
            flow.close()
            raise
        return await original(self, resume(delivery, waiting_on), flow)

    consumer_cls.wait_first = wait_first
    consumer_cls._classtrace_inline = True


def seek_with_flow_stopped() -> None:
    """Patch Faust's Consumer.perform_seek to stop the flow before it seeks (once per process).

    Nothing is then delivered while the positions go back to the committed offsets; what was
    delivered before is cleared from the queues by the caller's ``flow_control.resume()`` and
    fetched again from those offsets (already processed ones come twice: the processor's
    dedup absorbs them). Every caller in Faust resumes the flow right after the seek
    (``Recovery._resume_streams``, ``Recovery.on_recovery_completed``); the third, in
    ``Consumer.getmany``, seeks with the flow already stopped.
    """
    from faust.transport.consumer import Consumer

    consumer_cls: Any = Consumer
    if getattr(consumer_cls, "_classtrace_seek", False):
        return
    original = consumer_cls.perform_seek

    async def perform_seek(self: Any) -> None:
        if self.flow_active:
            self.stop_flow()
        await original(self)

    consumer_cls.perform_seek = perform_seek
    consumer_cls._classtrace_seek = True
