"""The spool drainer: spooled chunks → packed records → transport → delete what was acknowledged.

At-least-once by construction: a chunk leaves the spool only after the transport confirmed its
record (Kafka acks=all or the gateway's 200). A crash between the confirmation and the delete
re-sends the chunk after restart, with the same event_ids, which every consumer deduplicates.
One drain runs at a time (``_drain_lock``): a caller's ``flush()`` and the background thread
never send the same chunk twice concurrently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from classtrace.validation import MAX_BATCH_EVENTS
from producers.backoff import Backoff
from producers.errors import RejectedBatch, TransportError
from producers.spool.base import Spool, SpoolChunk
from producers.transport.base import Outbound, Transport

__all__ = ["Sender", "SenderCounters", "pack"]

logger = logging.getLogger(__name__)


@dataclass
class SenderCounters:
    """What the sender did since start (events, not records)."""

    delivered: int = 0
    rejected_by_peer: int = 0
    quarantined: int = 0
    send_failures: int = 0
    last_error: str = ""


def pack(
    chunks: Sequence[SpoolChunk],
    school_id: str,
    per_device: bool,
    max_events: int = MAX_BATCH_EVENTS,
    max_bytes: int = 1 << 20,
) -> list[tuple[Outbound, list[int]]]:
    """Join chunks into records: one per classroom (or device), ≤ ``max_events`` and ``max_bytes``.

    Concatenated ``EventBatch`` bytes are an ``EventBatch`` of all their events, so packing is a
    bytes join; the order of chunks is kept within each record.
    """
    open_records: dict[tuple[str, str], tuple[list[bytes], list[int], list[int]]] = {}
    packed: list[tuple[str, str, list[bytes], list[int], list[int]]] = []
    for chunk in chunks:
        key = (chunk.classroom_id, chunk.device_id if per_device else "")
        current = open_records.get(key)
        if current is not None:
            parts, rows, sizes = current
            if sizes[0] + chunk.n_events > max_events or sizes[1] + len(chunk.payload) > max_bytes:
                current = None
        if current is None:
            current = ([], [], [0, 0])
            open_records[key] = current
            packed.append((chunk.classroom_id, chunk.device_id, *current))
        parts, rows, sizes = current
        parts.append(chunk.payload)
        rows.append(chunk.row_id)
        sizes[0] += chunk.n_events
        sizes[1] += len(chunk.payload)
    return [
        (Outbound(school_id, classroom, device, sizes[0], b"".join(parts)), rows)
        for classroom, device, parts, rows, sizes in packed
    ]


class Sender:
    """Drains a spool through a transport, synchronously (:meth:`flush`) or in a thread."""

    def __init__(
        self,
        spool: Spool,
        transport: Transport,
        school_id: str,
        *,
        max_events_per_drain: int = 5 * MAX_BATCH_EVENTS,
        backoff: Backoff | None = None,
    ) -> None:
        self.spool = spool
        self.transport = transport
        self.school_id = school_id
        self.max_events_per_drain = max_events_per_drain
        self.backoff = backoff or Backoff()
        self.counters = SenderCounters()
        self._drain_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one pass ----------------------------------------------------------------------------------

    def drain_once(self) -> int:
        """Send the oldest spooled chunks once; returns events acknowledged.

        Acknowledged records are deleted and whole-batch refusals quarantined before the first
        retryable failure, if any, is raised as :class:`TransportError`.
        """
        with self._drain_lock:
            chunks = self.spool.batch(self.max_events_per_drain)
            if not chunks:
                return 0
            records = pack(
                chunks,
                self.school_id,
                self.transport.per_device,
                max_bytes=self.transport.max_record_bytes,
            )
            deliveries = self.transport.send([r for r, _ in records])
            acked: list[int] = []
            delivered = 0
            failure: TransportError | None = None
            for (record, rows), delivery in zip(records, deliveries, strict=True):
                error = delivery.error
                if error is None:
                    acked.extend(rows)
                    delivered += record.n_events - delivery.rejected
                    self.counters.rejected_by_peer += delivery.rejected
                elif isinstance(error, RejectedBatch):
                    self.spool.quarantine(rows, str(error))
                    self.counters.quarantined += record.n_events
                else:
                    failure = failure or error
            self.spool.ack(acked)
            self.counters.delivered += delivered
            if failure is not None:
                self.counters.send_failures += 1
                self.counters.last_error = str(failure)
                raise failure
            return delivered

    def flush(self, timeout: float | None = 30.0) -> int:
        """Drain until the spool is empty, retrying with backoff; returns events acknowledged.

        Raises the last :class:`TransportError` when ``timeout`` seconds pass first (the events
        stay spooled). ``timeout=None`` waits for as long as it takes.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        total = 0
        while self.spool.depth > 0:
            try:
                total += self.drain_once()
                self.backoff.reset()
            except TransportError as exc:
                delay = self.backoff.next_delay(exc.retry_after)
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise
                logger.info("send failed, retrying in %.2f s: %s", delay, exc)
                time.sleep(delay)
        return total

    # -- background --------------------------------------------------------------------------------

    def start(self) -> None:
        """Drain in a daemon thread whenever the spool holds events."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="edge-sender", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New events were spooled: drain now rather than at the next idle tick."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after its current send (at most ``timeout`` seconds of waiting)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.spool.depth == 0:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self.drain_once()
                self.backoff.reset()
            except TransportError as exc:
                delay = self.backoff.next_delay(exc.retry_after)
                logger.warning("send failed, retrying in %.2f s depth=%d: %s", delay, self.spool.depth, exc)
                self._stop.wait(delay)
            except Exception:  # a spool failure: keep the thread alive, the caller sees stats
                logger.exception("edge sender failed; retrying")
                self._stop.wait(self.backoff.next_delay())
