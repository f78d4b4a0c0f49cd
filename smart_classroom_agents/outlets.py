"""Where a simulation's events go: through EdgeProducers (Kafka or gateway), or into a list.

The runner only needs ``send`` (spool these events of one classroom), ``pump`` (ship what is
spooled, without waiting long) and ``close`` (ship everything, then release). Real runs use
:class:`EdgeOutlet`, so simulated devices take exactly the path real ones do — validation,
pseudonymisation, durable spool, batching per classroom or device; tests use
:class:`ListOutlet`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from classtrace.ids import school_pseudonym_key
from classtrace.v1 import events_pb2 as pb
from producers.errors import TransportError
from producers.sdk import EdgeProducer
from producers.transport.base import Transport
from smart_classroom_agents.timetable import Classroom

__all__ = ["EdgeOutlet", "ListOutlet", "Outlet"]

logger = logging.getLogger(__name__)


class Outlet(Protocol):
    """The runner's view of a delivery path."""

    def send(self, room: Classroom, events: Sequence[pb.Event]) -> None:
        """Accept events of one classroom (durably, for real outlets) or raise."""
        ...

    def pump(self) -> int:
        """Ship what is waiting, briefly; returns events still waiting."""
        ...

    def close(self, timeout: float) -> int:
        """Ship everything within ``timeout`` s and release; returns events left unsent."""
        ...


class ListOutlet:
    """Keeps every event in memory: for tests and ``simulate --dry-run``."""

    def __init__(self) -> None:
        self.events: list[pb.Event] = []

    def send(self, room: Classroom, events: Sequence[pb.Event]) -> None:
        """Append copies (the caller may reuse its messages)."""
        for event in events:
            copy = pb.Event()
            copy.CopyFrom(event)
            self.events.append(copy)

    def pump(self) -> int:
        """Nothing waits."""
        return 0

    def close(self, timeout: float) -> int:
        """Nothing to release."""
        return 0


class EdgeOutlet:
    """One EdgeProducer per classroom over a shared transport, flushed by the runner's ticks.

    Producers run without their own sender threads (``background=False``): a run of hundreds of
    classrooms would otherwise start hundreds of threads. Spools live under ``spool_dir``, one
    SQLite file per classroom, so an interrupted run resends what it had not delivered when the
    same classrooms run again. Standing in for the devices of every school, it holds the region
    secret and gives each producer only its school's key (docs/KEYS.md).
    """

    def __init__(
        self, transport: Transport, spool_dir: Path, region_secret: bytes, *, durable: bool = False
    ) -> None:
        self.transport = transport
        self.spool_dir = spool_dir
        self._region_secret = region_secret
        self.durable = durable
        self._producers: dict[tuple[str, str], EdgeProducer] = {}  # (school_id, classroom_id)
        spool_dir.mkdir(parents=True, exist_ok=True)

    def _producer(self, room: Classroom) -> EdgeProducer:
        key = (room.school_id, room.classroom_id)
        edge = self._producers.get(key)
        if edge is None:
            (self.spool_dir / room.school_id).mkdir(exist_ok=True)
            edge = EdgeProducer(
                room.school_id,
                room.classroom_id,
                self.transport,
                spool=self.spool_dir / room.school_id / f"{room.classroom_id}.db",
                pseudonym_key=school_pseudonym_key(self._region_secret, room.school_id),
                durable=self.durable,
                background=False,
                owns_transport=False,
            )
            self._producers[key] = edge
        return edge

    def send(self, room: Classroom, events: Sequence[pb.Event]) -> None:
        """Validate, pseudonymise (a no-op for the tablets' pseudonyms) and spool."""
        self._producer(room).send_events(events)

    def pump(self) -> int:
        """Flush every producer with a short timeout; a slow peer leaves events spooled."""
        waiting = 0
        for edge in self._producers.values():
            if edge.depth:
                try:
                    edge.flush(timeout=2.0)
                except TransportError as exc:
                    logger.warning(
                        "send behind classroom=%s depth=%d: %s", edge.classroom_id, edge.depth, exc
                    )
            waiting += edge.depth
        return waiting

    def close(self, timeout: float) -> int:
        """Flush all (each up to ``timeout`` s), close producers and the transport; events left."""
        left = 0
        for edge in self._producers.values():
            try:
                edge.flush(timeout=timeout)
            except TransportError as exc:
                logger.error(
                    "could not deliver classroom=%s depth=%d: %s", edge.classroom_id, edge.depth, exc
                )
            left += edge.depth
            edge.close(timeout=0)
        self.transport.close()
        return left
