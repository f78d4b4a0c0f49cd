"""Faust's record delivery with the inline first step (same outcomes as Faust's race), and
its seek back to the committed offsets with the flow stopped (no delivered record lost)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from mode import Service
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from stream_processors.delivery import deliver_inline, resume, seek_with_flow_stopped


class DrainingConsumer(Service):
    """What Consumer.wait_first needs of its consumer: a mode Service with suspend_flow."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()

    async def deliver(self, delivery: Any) -> Any:
        """The drain loop's call, through the patched Consumer.wait_first."""
        deliver_inline()
        return await Consumer.wait_first(self, delivery, self.suspend_flow.wait())  # type: ignore[arg-type]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.filterwarnings("error")  # a coroutine left never awaited would warn
def test_a_delivery_that_does_not_wait_is_done_in_place():
    async def main() -> tuple[Any, list[str], int]:
        consumer = DrainingConsumer()
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=10)
        tasks_before = len(asyncio.all_tasks())
        result = await consumer.deliver(queue.put("record"))
        return result, [queue.get_nowait()], len(asyncio.all_tasks()) - tasks_before

    result, delivered, new_tasks = run(main())
    assert delivered == ["record"]
    assert not result.stopped and result.results == [None]
    assert new_tasks == 0


def test_a_delivery_that_waits_for_room_finishes_when_the_stream_takes_a_record():
    async def main() -> list[str]:
        consumer = DrainingConsumer()
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        queue.put_nowait("first")
        delivering = asyncio.ensure_future(consumer.deliver(queue.put("second")))
        await asyncio.sleep(0.01)
        assert not delivering.done()  # waiting for room
        taken = [queue.get_nowait()]
        await asyncio.wait_for(delivering, 1)
        return [*taken, queue.get_nowait()]

    assert run(main()) == ["first", "second"]


def test_a_waiting_delivery_is_abandoned_when_the_flow_is_suspended():
    async def main() -> tuple[int, bool]:
        consumer = DrainingConsumer()
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        queue.put_nowait("first")
        delivering = asyncio.ensure_future(consumer.deliver(queue.put("second")))
        await asyncio.sleep(0.01)
        consumer.suspend_flow.set()  # a rebalance starts
        await asyncio.wait_for(delivering, 1)
        queue.get_nowait()
        await asyncio.sleep(0.01)
        return queue.qsize(), delivering.result().stopped

    size, stopped = run(main())
    assert size == 0  # "second" was never put: the delivery was cancelled, as in Faust
    assert not stopped


def test_a_delivery_that_raises_raises_from_the_drain_call():
    async def failing() -> None:
        raise ValueError("undecodable")

    async def main() -> None:
        await DrainingConsumer().deliver(failing())

    with pytest.raises(ValueError, match="undecodable"):
        run(main())


def test_other_wait_first_calls_are_fausts_own():
    async def main() -> Any:
        consumer = DrainingConsumer()
        deliver_inline()

        async def answer() -> int:
            await asyncio.sleep(0)
            return 42

        return await Consumer.wait_first(consumer, answer(), timeout=1.0)  # type: ignore[arg-type]

    assert run(main()).results == [42]


def test_resume_goes_on_where_the_coroutine_stopped_and_passes_cancellation_in():
    events: list[str] = []

    async def worker(gate: asyncio.Future[int]) -> int:
        events.append("started")
        try:
            value = await gate
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        events.append("resumed")
        return value * 2

    async def main(cancel: bool) -> Any:
        gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        coro = worker(gate)
        waiting_on = coro.send(None)  # the first step, run in place
        task = asyncio.ensure_future(resume(coro, waiting_on))
        await asyncio.sleep(0)
        if cancel:
            task.cancel()
        else:
            gate.set_result(21)
        try:
            return await task
        except asyncio.CancelledError:
            return "cancelled"

    assert run(main(cancel=False)) == 42
    assert events == ["started", "resumed"]
    events.clear()
    assert run(main(cancel=True)) == "cancelled"
    assert events == ["started", "cancelled"]


def test_fausts_drain_loop_still_makes_the_call_the_patch_recognises():
    """If a Faust release delivers records another way, the patch stops applying (harmlessly,
    but the worker loses a third of its speed): this says so at once."""
    import inspect

    source = inspect.getsource(Consumer._drain_messages)
    assert "self.wait_first(" in source and "callback(message), self.suspend_flow.wait()" in source


class SeekingConsumer:
    """What Consumer.perform_seek and the flow switches touch, and a fetch position that a seek
    resets: records from ``position`` on are delivered whenever the flow is active."""

    def __init__(self, records: int, committed: int) -> None:
        self.flow_active = True
        self.can_resume_flow = asyncio.Event()
        self.suspend_flow = asyncio.Event()
        self._read_offset: dict[Any, Any] = {}
        self._committed_offset: dict[Any, Any] = {}
        self.records, self.committed, self.position = records, committed, records

    async def seek_to_committed(self) -> dict[Any, int]:
        self.position = self.committed
        await asyncio.sleep(0.01)  # the round trip back from the consumer thread
        return {TP("events", 0): self.committed}

    async def perform_seek(self) -> None:
        await Consumer.perform_seek(self)  # type: ignore[arg-type]  # Faust's, patched

    def stop_flow(self) -> None:
        Consumer.stop_flow(self)  # type: ignore[arg-type]

    def resume_flow(self) -> None:
        Consumer.resume_flow(self)  # type: ignore[arg-type]


def test_no_record_delivered_during_the_seek_after_recovery_is_lost():
    """Faust's order when a rebalance needs no table recovery: the flow is already resumed,
    then ``on_recovery_completed`` seeks to the committed offsets, resumes the flow control
    (which clears the streams' queues) and the flow. A record delivered during the seek was
    cleared and never fetched again; with the flow stopped for the seek, all come."""
    seek_with_flow_stopped()

    async def main() -> list[int]:
        consumer = SeekingConsumer(records=20, committed=5)
        flow_control = FlowControlEvent(initially_suspended=False)
        queue: FlowControlQueue[int] = FlowControlQueue(flow_control=flow_control, clear_on_resume=True)

        async def drain() -> None:
            while True:
                if consumer.flow_active and consumer.position < consumer.records:
                    await queue.put(consumer.position)
                    consumer.position += 1
                await asyncio.sleep(0)

        draining = asyncio.ensure_future(drain())
        await consumer.perform_seek()
        flow_control.resume()
        consumer.resume_flow()
        await asyncio.sleep(0.05)
        draining.cancel()
        return [queue.get_nowait() for _ in range(queue.qsize())]

    assert run(main()) == list(range(5, 20))


def test_a_seek_with_the_flow_stopped_leaves_it_stopped():
    seek_with_flow_stopped()

    async def main() -> tuple[bool, dict[Any, Any]]:
        consumer = SeekingConsumer(records=3, committed=2)
        consumer.stop_flow()
        await consumer.perform_seek()
        return consumer.flow_active, consumer._read_offset

    assert run(main()) == (False, {TP("events", 0): 2})


def test_fausts_recovery_resumes_the_flow_after_every_seek():
    """seek_with_flow_stopped leaves the flow stopped; Faust's callers must resume it after."""
    import inspect

    from faust.tables.recovery import Recovery

    for method in (Recovery._resume_streams, Recovery.on_recovery_completed):
        source = inspect.getsource(method)
        seek = source.index("perform_seek()")
        assert source.index("consumer.resume_flow()", seek) > seek, method.__name__
