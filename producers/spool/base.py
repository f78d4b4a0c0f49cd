"""The spool seam: what the EdgeProducer needs from durable local storage.

Modelled on snowplow's event store (``add`` / ``batch`` / ``cleanup``), with two differences that
matter here. A stored unit is a *chunk*: the ``EventBatch`` bytes of up to a few hundred events of
one device. Protobuf concatenation makes a chunk sequence a valid ``EventBatch`` by itself
(``EventBatch(a) + EventBatch(b)`` bytes == ``EventBatch(a + b)``), so the sender never decodes
what it spooled: it joins bytes. And the per-device ``seq`` counter is stored with the chunks, in
the same transaction, so a restarted device continues its sequence and never reuses a number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["NewChunk", "Spool", "SpoolChunk", "SpoolStats"]


@dataclass(frozen=True, slots=True)
class NewChunk:
    """Events of one device to store: ``payload`` is their ``EventBatch`` serialisation."""

    classroom_id: str
    device_id: str
    n_events: int
    payload: bytes
    heartbeat_only: bool = False
    """Only heartbeats: the first thing a full spool gives up (a newer heartbeat replaces it)."""


@dataclass(frozen=True, slots=True)
class SpoolChunk:
    """A stored chunk, oldest first by ``row_id``."""

    row_id: int
    classroom_id: str
    device_id: str
    n_events: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """Counters of a spool since it was opened (``depth`` and ``quarantined`` are persistent)."""

    depth: int
    capacity: int
    refused_full: int
    dropped_heartbeats: int
    quarantined: int


@runtime_checkable
class Spool(Protocol):
    """Durable FIFO of event chunks plus the per-device sequence counters."""

    @property
    def depth(self) -> int:
        """Events waiting (acknowledged events are gone)."""
        ...

    def last_seqs(self) -> dict[str, int]:
        """The last ``seq`` handed out per device, as persisted."""
        ...

    def append(self, chunks: Sequence[NewChunk], seqs: Mapping[str, int]) -> None:
        """Store ``chunks`` and the devices' new last ``seqs`` atomically, or nothing.

        Raises :class:`~producers.errors.SpoolFull` by the spool's capacity policy.
        """
        ...

    def batch(self, max_events: int) -> list[SpoolChunk]:
        """The oldest chunks, at most ``max_events`` events (always at least one chunk if any)."""
        ...

    def ack(self, row_ids: Iterable[int]) -> None:
        """Delete chunks the transport has durably delivered."""
        ...

    def quarantine(self, row_ids: Iterable[int], reason: str) -> None:
        """Set chunks aside that the peer refused for good, keeping them for inspection."""
        ...

    def stats(self) -> SpoolStats:
        """Depth, capacity and the policy counters."""
        ...

    def close(self) -> None:
        """Release the file; the chunks stay for the next open."""
        ...
