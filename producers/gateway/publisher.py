"""Kafka publishing for an asyncio server: produce from the event loop, await acks=all.

librdkafka delivers acknowledgements through callbacks served by ``poll()``. A dedicated thread
polls, and each callback resolves its asyncio future with ``loop.call_soon_threadsafe``, so the
event loop never blocks on Kafka and thousands of requests can wait for their acks at once.
With the stack's record key every record is signed (classtrace/signing.py): the worker and the
sink read only what a classtrace role wrote.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from typing import Any

from classtrace.kafka import KafkaError, KafkaException, Message, Producer, make_producer
from classtrace.signing import RecordKey
from producers.errors import TransportError

__all__ = ["AsyncPublisher"]


class _Closed:
    """Stands in for the producer after close(): any use is a programming error."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("publisher is closed")


logger = logging.getLogger(__name__)


class AsyncPublisher:
    """``await publisher.publish(topic, value, key)`` returns once the record is acks=all durable.

    Raises :class:`TransportError` (with ``retry_after``) when the local queue is full or the
    delivery failed: the gateway answers 503 and the device retries.
    """

    def __init__(
        self,
        bootstrap: str,
        options: Mapping[str, str] | None = None,
        *,
        delivery_timeout: float = 15.0,
        record_key: RecordKey | None = None,
        **overrides: Any,
    ) -> None:
        self.record_key = record_key
        overrides.setdefault("message.timeout.ms", int(delivery_timeout * 1000))
        overrides.setdefault("linger.ms", 2)  # a request waits for its own ack: keep linger short
        self._producer: Producer | _Closed = make_producer(bootstrap, options, **overrides)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the polling thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="gateway-kafka-poll", daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def publish(self, topic: str, value: bytes, key: str | None = None) -> asyncio.Future[None]:
        """Produce now; the returned future completes when Kafka acknowledged the record.

        Must be called from the event loop thread. Produce errors (queue full) fail the future
        immediately rather than raising, so callers await a uniform set of futures.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def settle(error: str | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(TransportError(error, retry_after=1.0))

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            loop.call_soon_threadsafe(settle, None if err is None else f"Kafka delivery failed: {err.str()}")

        try:
            headers = self.record_key.headers(topic, key, value) if self.record_key else None
            self._producer.produce(topic, value, key=key, headers=headers, on_delivery=on_delivery)
        except BufferError:
            settle("Kafka producer queue is full")
        except KafkaException as exc:
            settle(f"Kafka produce failed: {exc}")
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is in flight, then stop polling."""
        remaining = self._producer.flush(timeout)
        if remaining:
            logger.warning("gateway stopped with records unconfirmed count=%d", remaining)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        # confluent-kafka has no close(): the client (and its broker connections) goes with the
        # last reference. Drop it now rather than whenever the app is collected.
        self._producer = _Closed()
