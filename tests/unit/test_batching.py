"""The worker's batches: take_events' limits, and an early end once the backlog is read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import faust
from faust.types import TP

from stream_processors.batching import consumer_caught_up, take_batches

LONG = 60.0  # a ``within`` no test waits for


def batches_of(
    values: int, max_: int, within: float, caught_up: Callable[[], bool], wait: float
) -> list[list[bytes]]:
    """Send ``values`` records to an agent that batches them; the batches seen after ``wait`` s."""

    async def main() -> list[list[bytes]]:
        app = faust.App(f"test-batching-{time.monotonic_ns()}", value_serializer="raw")
        got: list[list[bytes]] = []

        @app.agent()
        async def collect(stream: Any) -> None:
            async for events in take_batches(stream, max_, within, caught_up):
                got.append([e.value for e in events])

        async with collect.test_context() as agent:
            for n in range(values):
                await agent.send(value=str(n).encode())
            deadline = time.monotonic() + wait
            while sum(map(len, got)) < values and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return list(got)  # before the agent stops (a stopping stream yields what it holds)

    return asyncio.run(main())


def test_a_read_backlog_ends_the_batch_without_waiting_out_within():
    got = batches_of(3, max_=8, within=LONG, caught_up=lambda: True, wait=10)
    assert got == [[b"0", b"1", b"2"]]


def test_while_more_is_fetched_the_batch_waits():
    assert batches_of(3, max_=8, within=LONG, caught_up=lambda: False, wait=1) == []


def test_a_batch_under_a_quarter_of_max_waits_for_within_even_when_caught_up():
    assert batches_of(1, max_=8, within=LONG, caught_up=lambda: True, wait=1) == []
    assert batches_of(1, max_=8, within=0.2, caught_up=lambda: True, wait=10) == [[b"0"]]


def test_the_tail_of_a_backlog_ends_at_once_and_then_small_batches_wait_again():
    async def main() -> list[list[bytes]]:
        app = faust.App(f"test-batching-{time.monotonic_ns()}", value_serializer="raw")
        got: list[list[bytes]] = []

        @app.agent()
        async def collect(stream: Any) -> None:
            async for events in take_batches(stream, 8, LONG, lambda: True):
                got.append([e.value for e in events])

        async def until(n: int, wait: float) -> None:
            deadline = time.monotonic() + wait
            while len(got) < n and time.monotonic() < deadline:
                await asyncio.sleep(0.02)

        async with collect.test_context() as agent:
            for _ in range(8):  # a full batch: a backlog
                await agent.send(value=b"backlog")
            await until(1, 10)
            await agent.send(value=b"tail")  # under a quarter, right after a full batch
            await until(2, 10)
            await agent.send(value=b"trickle")  # under a quarter after a small batch: waits
            await until(3, 1)
            return list(got)

    assert asyncio.run(main()) == [[b"backlog"] * 8, [b"tail"]]


def test_a_batch_still_reading_a_backlog_at_within_fills_on_for_one_more_within():
    # within 2 s: nothing at 3 s while more is fetched (ended at 4 s); at once when caught up
    assert batches_of(3, max_=8, within=2.0, caught_up=lambda: False, wait=3) == []
    assert batches_of(3, max_=8, within=2.0, caught_up=lambda: False, wait=10) == [[b"0", b"1", b"2"]]
    assert batches_of(1, max_=8, within=2.0, caught_up=lambda: True, wait=3) == [[b"0"]]


def test_batches_never_exceed_max_and_keep_every_record_in_order():
    got = batches_of(20, max_=8, within=0.2, caught_up=lambda: False, wait=10)
    assert [len(b) for b in got] == [8, 8, 4]
    assert [v for b in got for v in b] == [str(n).encode() for n in range(20)]


class Consumer:
    """What consumer_caught_up reads of Faust's consumer."""

    def __init__(self, read: dict[TP, int | None], high: dict[TP, int]) -> None:
        self._read_offset = read
        self._high = high

    def assignment(self) -> set[TP]:
        return set(self._read_offset)

    def highwater(self, tp: TP) -> int:
        if tp not in self._high:
            raise AssertionError("Partition is not assigned")  # as aiokafka says it
        return self._high[tp]


def caught_up(read: dict[TP, int | None], high: dict[TP, int]) -> bool:
    return consumer_caught_up(SimpleNamespace(consumer=Consumer(read, high)), "events")()


def test_caught_up_means_every_partition_of_the_topic_delivered_to_its_watermark():
    e0, e1, other = TP("events", 0), TP("events", 1), TP("lessons-changelog", 0)
    assert caught_up({e0: 9, e1: 4}, {e0: 10, e1: 5})
    assert not caught_up({e0: 9, e1: 3}, {e0: 10, e1: 5})  # partition 1 has a record left
    assert caught_up({e0: 9, e1: 4, other: 0}, {e0: 10, e1: 5, other: 500})  # other topics: not ours
    assert caught_up({e0: None}, {e0: 0})  # nothing delivered, nothing there
    assert not caught_up({e0: 9, e1: 4}, {e0: 10})  # partition 1 no longer assigned: a rebalance


def test_fausts_consumer_still_keeps_the_read_offsets_caught_up_reads():
    """consumer_caught_up reads Faust's per-partition read offset (the last record its drain
    loop delivered): if a Faust release renames it, this says so at once."""
    import inspect

    from faust.transport.consumer import Consumer as FaustConsumer

    assert "set_read_offset(tp, offset)" in inspect.getsource(FaustConsumer._drain_messages)
    assert "self._read_offset = defaultdict" in inspect.getsource(FaustConsumer.__init__)
