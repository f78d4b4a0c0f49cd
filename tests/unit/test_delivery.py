"""The seek shim against Faust's own recovery code: ``Recovery.on_recovery_completed`` and
``Recovery._resume_streams`` run as Faust 0.15.3 wrote them, on a real Faust consumer, the app's
flow control and a stream queue like a channel's. Only the broker's side is stood in for: the
consumer's assignment, partition resumes and the round trip of ``seek_to_committed``, and a fetcher
that delivers from the consumer's position whenever the flow is active.

Without the shim, Faust loses every record delivered during the seek (the upstream bug,
docs/upstream/faust-seek-race.md); with it, none. Both are asserted, so a Faust release that fixes
the race, stops resuming the flow after the seek, or orders its recovery differently fails here.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import faust
import pytest
from faust.transport.consumer import Consumer
from faust.types import TP

from stream_processors.delivery import SEEK_SHIM, seek_with_flow_stopped

EVENTS_TP = TP("classtrace.events.v1", 0)
RECORDS, COMMITTED = 20, 5


class Broker:
    """The broker's side of one assigned partition: records 0..RECORDS-1, the consumer's fetch
    position (at the end: everything before was delivered before the rebalance), and the
    committed offset a seek goes back to."""

    def __init__(self, app: faust.App) -> None:
        self.position = RECORDS
        self.paused = True  # Faust pauses every partition when a rebalance starts
        consumer: Any = app.consumer
        consumer.assignment = lambda: {EVENTS_TP}
        consumer.resume_partitions = self.resume_partitions
        consumer.seek_to_committed = self.seek_to_committed
        fetcher: Any = app._fetcher  # type: ignore[attr-defined]
        fetcher.maybe_start = self.nothing

    def resume_partitions(self, tps: Any) -> None:
        self.paused = False

    async def seek_to_committed(self) -> dict[TP, int]:
        self.position = COMMITTED
        await asyncio.sleep(0.01)  # the round trip through the consumer thread
        return {EVENTS_TP: COMMITTED}

    async def nothing(self) -> None:
        return None


async def recover(step: str) -> list[int]:
    """A rebalance that needs no table restore, then Faust's recovery ``step``; the records the
    stream's queue holds once it is done."""
    app = faust.App(f"seek-race-{step}", broker="kafka://127.0.0.1:9")  # nothing connects
    consumer: Any = app.consumer
    broker = Broker(app)
    queue: Any = app.FlowControlQueue(maxsize=1000, clear_on_resume=True)  # as a channel's

    async def fetch_and_deliver() -> None:  # what the fetcher's drain loop does while it may
        while True:
            if consumer.flow_active and not broker.paused and broker.position < RECORDS:
                await queue.put(broker.position)
                broker.position += 1
            await asyncio.sleep(0)

    # Recovery._restart_recovery, no restore needed: "Resuming flow..." before the step below.
    app.flow_control.resume()
    consumer.resume_flow()
    fetcher = asyncio.ensure_future(fetch_and_deliver())
    try:
        recovery: Any = cast(Any, app.tables).recovery
        if step == "on_recovery_completed":
            await recovery.on_recovery_completed(app.consumer_generation_id)
        else:
            await recovery._resume_streams(app.consumer_generation_id)
        await asyncio.sleep(0.05)
    finally:
        fetcher.cancel()
    return [queue.get_nowait() for _ in range(queue.qsize())]


STEPS = ["on_recovery_completed", "_resume_streams"]


@pytest.mark.parametrize("step", STEPS)
def test_with_the_shim_no_record_delivered_during_the_seek_is_lost(step: str) -> None:
    seek_with_flow_stopped()
    before = SEEK_SHIM.flow_stopped
    assert asyncio.run(recover(step)) == list(range(COMMITTED, RECORDS))
    assert SEEK_SHIM.flow_stopped == before + 1  # the shim ran, and found the flow running


@pytest.mark.parametrize("step", STEPS)
def test_without_the_shim_faust_loses_them(step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The upstream bug as Faust 0.15.3 has it. If this fails, Faust changed: re-read the
    recovery, and drop the shim if the race is gone."""
    seek_with_flow_stopped()
    monkeypatch.setattr(Consumer, "perform_seek", Consumer.perform_seek.__wrapped__)  # type: ignore[attr-defined]
    assert asyncio.run(recover(step)) == []


def test_a_seek_with_the_flow_already_stopped_leaves_it_stopped() -> None:
    """``Consumer.getmany`` seeks when it finds the flow stopped; the shim changes nothing there."""
    seek_with_flow_stopped()

    async def main() -> tuple[bool, int | None]:
        app = faust.App("seek-stopped", broker="kafka://127.0.0.1:9")
        Broker(app)
        consumer: Any = app.consumer
        consumer.stop_flow()
        await consumer.perform_seek()
        return consumer.flow_active, consumer._read_offset[EVENTS_TP]

    calls, stopped = SEEK_SHIM.calls, SEEK_SHIM.flow_stopped
    assert asyncio.run(main()) == (False, COMMITTED)
    assert (SEEK_SHIM.calls, SEEK_SHIM.flow_stopped) == (calls + 1, stopped)
