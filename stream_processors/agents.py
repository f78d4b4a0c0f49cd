"""The worker's agent and timer: thin glue between Faust's stream and the processor.

One agent reads classtrace.events.v1 in batches
(:meth:`~stream_processors.batching.BatchingStream.take_batches`, Faust's ``take_events``: at
most ``max_batch_records`` records or ``flush_interval_s`` of waiting), hands them to the
processor synchronously, and acknowledges them after the batch returns — so offsets are
committed only for records whose state is already on its way to the changelog. Nothing raises
out of the agent: a Faust agent that raises hangs the worker (docs/FIELD-NOTES.md); the processor
dead-letters and logs instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import faust

from classtrace.erasure import ErasureFollower
from classtrace.topics import ERASURES
from stream_processors.app import FaustTable, RecordWriter, TopicOutputs, WorkerConfig, build_app
from stream_processors.batching import BatchingStream
from stream_processors.processor import Processor, ProcessorConfig, Record

__all__ = ["create_worker_app"]

logger = logging.getLogger(__name__)

_TICK_S = 0.5


def create_worker_app(config: WorkerConfig) -> tuple[faust.App, Processor]:
    """The Faust app with its agent, timer and rebalance hook wired to a fresh Processor."""
    app = build_app(config)
    topics = app.classtrace_topics  # type: ignore[attr-defined]
    tables = app.classtrace_tables  # type: ignore[attr-defined]
    writer = RecordWriter(app)
    # Every erasure so far is known before the first record (docs/ERASURE.md); the topic is made
    # by ensure_topics with the others.
    erasures = ErasureFollower(
        config.bootstrap,
        ERASURES,
        config.kafka_options,
        name=f"{config.app_id}-erasures",
        record_key=config.record_key,
    )
    erasures.start()
    processor = Processor(
        FaustTable(tables["lessons"], writer),
        FaustTable(tables["windows"], writer),
        FaustTable(tables["devices"], writer),
        TopicOutputs(writer, config.record_key),
        ProcessorConfig(
            summary_interval_s=config.summary_interval_s,
            window_retention_s=config.window_retention_s,
            state_horizon_s=config.state_horizon_s,
            state_scan_s=config.state_scan_s,
            keep_raw=config.keep_raw,
        ),
        erasures=erasures,
        record_key=config.record_key,
    )

    def mark_first(value: Any) -> Any:
        if not processor.stats.first_record_at:
            processor.stats.first_record_at = time.time()
        return value

    async def process(stream: faust.StreamT[Any]) -> None:
        stream.add_processor(mark_first)
        batching = cast(BatchingStream, stream)  # the app's Stream= setting (build_app)
        async for events in batching.take_batches(config.max_batch_records, config.flush_interval_s):
            processor.process_records(
                [
                    Record(
                        e.message.topic,
                        e.message.partition,
                        e.message.offset,
                        e.message.key,
                        e.message.value,
                        e.message.headers,
                    )
                    for e in events
                ]
            )
            # Before Faust acks these events (when the loop asks for the next batch).
            await send(writer)

    app.agent(topics["events"], name="classtrace-metrics")(process)

    async def send(writer: RecordWriter) -> None:
        try:
            await writer.send()
        except Exception as exc:  # records lost: stop (unacked events come again after restart)
            logger.exception("producing changelog/metrics records failed")
            await app.crash(exc)

    async def tick() -> None:
        processor.tick()
        await send(writer)

    app.timer(_TICK_S, name="classtrace-tick")(tick)

    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The revoked partitions' values may change on another worker: re-read them from the
        # tables when they come back instead of trusting this worker's objects.
        processor.forget()

    app.on_partitions_revoked.connect(on_revoked)
    return app, processor
