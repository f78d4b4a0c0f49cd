"""The transport seam: send ready ``EventBatch`` records and say which were durably acknowledged.

A transport never retries on its own beyond its client's built-in retries: the EdgeProducer owns
backoff, because only it knows the events are safe in the spool meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from producers.errors import TransportError

__all__ = ["Delivery", "Outbound", "Transport"]


@dataclass(frozen=True, slots=True)
class Outbound:
    """One record to send: the ``EventBatch`` bytes of ``n_events`` events of one classroom.

    ``device_id`` is set when the transport groups per device (the gateway's tokens bind one
    device); a Kafka record may mix the devices of its classroom.
    """

    school_id: str
    classroom_id: str
    device_id: str
    n_events: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one :class:`Outbound`.

    ``error`` None means durably acknowledged (Kafka acks=all, or the gateway's 200); then
    ``rejected`` counts events the peer refused one by one (dead-lettered by the peer).
    """

    error: TransportError | None = None
    rejected: int = 0


@runtime_checkable
class Transport(Protocol):
    """Sends records; safe to share between EdgeProducers of many classrooms."""

    per_device: bool
    """True when one record may only carry the events of one device (HTTP tokens)."""

    max_record_bytes: int
    """The largest record the peer takes; the sender packs records below it."""

    def send(self, records: Sequence[Outbound]) -> list[Delivery]:
        """Send ``records``; one :class:`Delivery` per record, in order. Never raises for I/O."""
        ...

    def close(self) -> None:
        """Release connections (flushes nothing: unacknowledged records stay spooled)."""
        ...
