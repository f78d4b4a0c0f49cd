"""Faust's record delivery with the inline first step: same outcomes as Faust's race."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from mode import Service

from stream_processors.delivery import deliver_inline, resume


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
