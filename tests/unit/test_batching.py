"""The worker's batches: a Stream subclass set with Faust's ``Stream=`` setting, whose batches
are Faust's own ``take_events`` — limits, order, acks and clean-up, driven through real agents."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any, TypeVar, cast

import faust

from stream_processors.app import WorkerConfig, build_app
from stream_processors.batching import BatchingStream

LONG = 60.0  # a ``within`` no test waits for
T = TypeVar("T")


def new_app() -> faust.App:
    return faust.App(f"test-batching-{time.monotonic_ns()}", value_serializer="raw", Stream=BatchingStream)


async def until(done: Callable[[], bool], wait: float) -> None:
    deadline = time.monotonic() + wait
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def run_agent(
    body: Callable[[BatchingStream], Awaitable[None]],
    values: list[bytes],
    seen: Callable[[], T],
    done: Callable[[T], bool],
    wait: float,
) -> T:
    """Send ``values`` to an agent running ``body`` on its stream; ``seen()`` once ``done(seen())``
    or after ``wait`` s, taken before the agent stops (a stopping stream yields what it holds)."""

    async def main() -> T:
        app = new_app()

        async def agent_body(stream: Any) -> None:
            await body(stream)

        agent: Any = app.agent()(agent_body)
        async with agent.test_context() as running:
            for value in values:
                await running.send(value=value)
            await until(lambda: done(seen()), wait)
            return seen()

    return asyncio.run(main())


def batches_of(values: int, max_: int, within: float, wait: float) -> list[list[bytes]]:
    """The batches an agent sees of ``values`` records within ``wait`` s."""
    got: list[list[bytes]] = []

    async def body(stream: BatchingStream) -> None:
        async for events in stream.take_batches(max_, within):
            got.append([e.value for e in events])

    return run_agent(
        body,
        [str(n).encode() for n in range(values)],
        lambda: list(got),
        lambda g: sum(map(len, g)) >= values,
        wait,
    )


def test_the_worker_app_makes_every_stream_a_batching_stream(tmp_path: Path) -> None:
    app = build_app(WorkerConfig("127.0.0.1:9", 2, tmp_path))  # builds only: nothing connects
    assert cast(object, app.conf.Stream) is BatchingStream
    assert isinstance(app.stream(app.classtrace_topics["events"]), BatchingStream)  # type: ignore[attr-defined]


def test_batches_never_exceed_max_and_keep_every_record_in_order() -> None:
    got = batches_of(20, max_=8, within=0.2, wait=10)
    assert [len(b) for b in got] == [8, 8, 4]
    assert [v for b in got for v in b] == [str(n).encode() for n in range(20)]


def test_a_batch_under_max_comes_once_within_has_passed() -> None:
    assert batches_of(3, max_=8, within=LONG, wait=1) == []  # neither full nor within passed
    assert batches_of(3, max_=8, within=0.2, wait=10) == [[b"0", b"1", b"2"]]


def test_a_batch_is_acked_only_when_the_agent_asks_for_the_next_one() -> None:
    acked_while_processed: list[bool] = []
    acked_after: list[bool] = []

    async def body(stream: BatchingStream) -> None:
        previous: list[Any] = []
        async for events in stream.take_batches(4, 0.2):
            acked_after.extend(e.message.acked for e in previous)
            acked_while_processed.extend(e.message.acked for e in events)
            previous = list(events)

    run_agent(body, [b"x"] * 10, lambda: len(acked_while_processed), lambda n: n >= 10, 10)
    assert acked_while_processed == [False] * 10
    assert acked_after == [True] * 8  # the first two batches; the last is acked on the next ask


def test_leaving_the_loop_runs_fausts_clean_up_and_the_stream_reads_on() -> None:
    first: list[bytes] = []
    rest: list[bytes] = []
    acks_after: list[bool] = []

    async def body(stream: BatchingStream) -> None:
        async with aclosing(stream.take_batches(4, LONG)) as batches:
            async for events in batches:
                first.extend(e.value for e in events)
                break
        acks_after.append(stream.enable_acks)  # take_events turned them off for its own acks
        async for value in stream:  # no buffering processor left to swallow records
            rest.append(value)

    run_agent(body, [str(n).encode() for n in range(6)], lambda: len(rest), lambda n: n >= 2, 10)
    assert first == [b"0", b"1", b"2", b"3"]
    assert acks_after == [True]
    assert rest == [b"4", b"5"]
