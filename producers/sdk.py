"""The EdgeProducer SDK: what a classroom device links to get its events into Kafka safely.

Every event goes through the same steps, in this order:

1. complete the envelope — a fresh UUID ``event_id``, the producer's school/classroom, the next
   per-device ``seq`` (persisted with the spool, so it survives restarts), ``occurred_at`` = now;
2. pseudonymise ``trace.student_id`` on the device (docs/DESIGN.md §4) — a raw id never leaves it;
3. validate with :mod:`classtrace.validation`, the rules every entry point applies;
4. append to the durable spool (one transaction per call) — only then does ``send_events``
   return;
5. a sender drains the spool: one ``EventBatch`` record per classroom (Kafka) or per device
   (gateway) and flush, and deletes only what was acknowledged; failures back off with jitter.

Example::

    transport = KafkaTransport("kafka:9092")                  # or HttpTransport(url, tokens)
    with EdgeProducer("sch-1", "room-101", transport, spool="/var/lib/edge/spool.db",
                      pseudonym_key=key) as edge:
        ev = edge.event("tab-07", pb.DEVICE_KIND_TABLET, lesson_id="les-9")
        ev.trace.student_id = "20230117"                     # raw: pseudonymised here
        ev.trace.verb = pb.LearningTrace.VERB_VIEWED
        edge.send_events([ev])
        edge.flush()

One producer serves any number of devices of its classroom; a simulator may drive many
producers over one shared transport (``owns_transport=False``) and ``background=False``,
calling :meth:`EdgeProducer.flush` itself.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from classtrace.codec import datetime_to_ts, seconds_to_ts, split_ns
from classtrace.errors import ValidationError
from classtrace.ids import is_pseudonym, pseudonymise
from classtrace.v1 import events_pb2 as pb
from classtrace.validation import read_event
from producers.backoff import Backoff
from producers.sender import Sender
from producers.spool.base import NewChunk, Spool
from producers.spool.sqlite import DEFAULT_CAPACITY, SQLiteSpool
from producers.transport.base import Transport

__all__ = ["EdgeProducer", "ProducerStats"]

logger = logging.getLogger(__name__)

CHUNK_EVENTS = 250  # events per spool row: big enough to amortise SQLite, small to pack freely
_UNSET_KIND = pb.DEVICE_KIND_UNSPECIFIED


@dataclass(frozen=True)
class ProducerStats:
    """A snapshot of an EdgeProducer's counters (events, not records)."""

    depth: int
    delivered: int
    rejected_by_peer: int
    quarantined: int
    refused_full: int
    dropped_heartbeats: int
    send_failures: int
    last_error: str


class EdgeProducer:
    """Builds, validates, pseudonymises and durably spools events; a sender ships them.

    ``spool`` is a :class:`~producers.spool.base.Spool` or the path of a SQLite spool file
    (``capacity`` and ``durable`` then apply, see :mod:`producers.spool.sqlite`).
    ``background`` starts a sender thread; without it, call :meth:`flush` or :meth:`drain_once`.
    ``drain_events`` bounds one drain (it is packed into records of ≤ 1000 events).
    ``device_kinds`` (device id → DeviceKind) fills ``device_kind`` where an event leaves it
    unset, as the gateway does from a device's registration; without an entry, an unset kind is
    rejected by validation as before (a producer writing to Kafka directly has no registry).
    ``pseudonym_key`` is the key of this producer's school (``classtrace devices key --school S``,
    docs/KEYS.md), never the region secret; so a raw ``student_id`` in an event of another school
    is refused rather than given a pseudonym that school's own devices would not compute.
    """

    def __init__(
        self,
        school_id: str,
        classroom_id: str,
        transport: Transport,
        *,
        spool: Spool | str | Path,
        pseudonym_key: bytes | str,
        capacity: int = DEFAULT_CAPACITY,
        durable: bool = True,
        background: bool = True,
        owns_transport: bool = True,
        backoff: Backoff | None = None,
        drain_events: int = 5000,
        clock: Callable[[], float] = time.time,
        device_kinds: Mapping[str, pb.DeviceKind.ValueType] | None = None,
    ) -> None:
        self.school_id = school_id
        self.classroom_id = classroom_id
        self._key = pseudonym_key.encode() if isinstance(pseudonym_key, str) else pseudonym_key
        if not self._key:
            raise ValueError("pseudonym_key is empty: students could not be pseudonymised")
        self.spool: Spool = (
            spool if isinstance(spool, Spool) else SQLiteSpool(spool, capacity=capacity, durable=durable)
        )
        self.transport = transport
        self._owns_transport = owns_transport
        self._clock = clock
        self._device_kinds = dict(device_kinds or {})
        self._seqs = self.spool.last_seqs()
        self._pseudonyms: dict[tuple[str, str], str] = {}
        self._id_pool: list[str] = []
        self._append_lock = threading.Lock()
        self._sender = Sender(
            self.spool, transport, school_id, backoff=backoff, max_events_per_drain=drain_events
        )
        if background:
            self._sender.start()

    # -- building --------------------------------------------------------------------------------

    def event(
        self,
        device_id: str,
        device_kind: pb.DeviceKind.ValueType,
        *,
        lesson_id: str = "",
        occurred_at: datetime | float | None = None,
    ) -> pb.Event:
        """A new event envelope (event_id, ids, occurred_at); set one payload, then send it."""
        ev = pb.Event(
            event_id=self._next_event_id(),
            school_id=self.school_id,
            classroom_id=self.classroom_id,
            device_id=device_id,
            lesson_id=lesson_id,
            device_kind=device_kind,
        )
        _set_time(ev, self._clock() if occurred_at is None else occurred_at)
        return ev

    def pseudonym(self, raw_student_id: str) -> str:
        """The pseudonym of a student of this school (what ``send_events`` substitutes)."""
        return pseudonymise(self._key, self.school_id, raw_student_id)

    # -- sending ---------------------------------------------------------------------------------

    def send_events(self, events: Iterable[pb.Event]) -> list[str]:
        """Complete, pseudonymise, validate and spool ``events`` (changed in place); their ids.

        All or nothing: an invalid event raises :class:`ValidationError` (``field`` prefixed with
        ``events[i].``) and a full spool :class:`~producers.errors.SpoolFull`; then nothing of
        the call was spooled and no seq was used up.

        Column by column over the call, as lean as upb allows (a field read costs about as much
        as a check): the envelope, reading only what it completes (:meth:`_complete`); one
        serialisation per event (the spool row holds the bytes the sender ships, so nothing is
        re-encoded); validation with :func:`classtrace.validation.read_event`, the rules every
        entry point applies. The common cases (ids already pseudonymised or seen, one device)
        are lookups.
        """
        batch = events if isinstance(events, list) else list(events)
        if not batch:
            return []
        now = float(self._clock())
        with self._append_lock:
            ids, classrooms, devices, payloads = self._complete(batch, now)
            seqs = _number(batch, devices, self._seqs)
            items = _serialise(batch)
            _validate(batch, now)
            self.spool.append(_chunks(_group(classrooms, devices, payloads, items)), seqs)
            self._seqs.update(seqs)
        self._sender.wake()
        return ids

    def _complete(
        self, batch: list[pb.Event], now: float
    ) -> tuple[list[str], list[str], list[str], list[str | None]]:
        """Fill in what the envelope leaves unset and pseudonymise students, column by column.

        Returns the call's event ids, classroom ids, device ids and payload names, in order.
        """
        ids = self._fill_event_ids(batch)
        schools = _fill_column(batch, "school_id", self.school_id)
        classrooms = _fill_column(batch, "classroom_id", self.classroom_id)
        _fill_times(batch, now)
        devices = [ev.device_id for ev in batch]
        if self._device_kinds:
            _fill_kinds(batch, devices, self._device_kinds)
        payloads: list[str | None] = [ev.WhichOneof("payload") for ev in batch]
        if "trace" in payloads:
            self._pseudonymise(batch, schools, payloads)
        return ids, classrooms, devices, payloads

    def _fill_event_ids(self, batch: list[pb.Event]) -> list[str]:
        """Every event's id, a fresh UUID4 given to those without one."""
        ids = [ev.event_id for ev in batch]
        if "" in ids:
            pool, n = self._id_pool, len(batch)
            for i, ev in enumerate(batch):
                if not ids[i]:
                    if not pool:
                        pool.extend(_event_ids(max(256, n - i)))
                    ev.event_id = ids[i] = pool.pop()
        return ids

    def _pseudonymise(self, batch: list[pb.Event], schools: list[str], payloads: list[str | None]) -> None:
        """Replace each learning trace's raw ``student_id`` with its pseudonym (docs/DESIGN.md §4)."""
        pseudonyms = self._pseudonyms
        for i, (ev, school, payload) in enumerate(zip(batch, schools, payloads, strict=True)):
            if payload != "trace":
                continue
            trace = ev.trace
            student = trace.student_id
            if student:
                pseudonym = pseudonyms.get((school, student))
                if pseudonym is None:
                    if school != self.school_id and not is_pseudonym(student):
                        raise ValidationError(
                            f"events[{i}].school_id",
                            f"is not this producer's school {self.school_id!r}: its pseudonym key "
                            "is that school's only, so it cannot pseudonymise this student",
                        )
                    pseudonym = self._pseudonym_of(school, student)
                if pseudonym != student:
                    trace.student_id = pseudonym

    def _pseudonym_of(self, school: str, student: str) -> str:
        """What ``student`` becomes in the spool: itself if already a pseudonym, else its HMAC.

        Memoised — a classroom has a few dozen students, so this spares an HMAC (or a pattern
        match) per learning trace. The memo lives in the device's memory, where the raw ids
        already are; it is never logged or persisted.
        """
        if len(self._pseudonyms) >= 4096:
            self._pseudonyms.clear()
        value = student if is_pseudonym(student) else pseudonymise(self._key, school, student)
        self._pseudonyms[(school, student)] = value
        return value

    def _next_event_id(self) -> str:
        pool = self._id_pool
        if not pool:
            pool.extend(_event_ids(256))
        return pool.pop()

    def send(self, event: pb.Event) -> str:
        """:meth:`send_events` for one event."""
        return self.send_events([event])[0]

    def heartbeat(
        self,
        device_id: str,
        device_kind: pb.DeviceKind.ValueType,
        *,
        interval_s: int = 30,
        battery_pct: float = 100.0,
        cpu_pct: float = 0.0,
        firmware: str = "",
    ) -> str:
        """Spool a heartbeat carrying the current spool depth; returns its event_id."""
        ev = self.event(device_id, device_kind)
        hb = ev.heartbeat
        hb.interval_s = interval_s
        hb.battery_pct = battery_pct
        hb.cpu_pct = cpu_pct
        hb.firmware = firmware
        hb.spool_depth = self.spool.depth
        return self.send(ev)

    def drain_once(self) -> int:
        """Send the oldest spooled events once (at most ``drain_events``); events acknowledged.

        No retry: a failure raises :class:`~producers.errors.TransportError` after what did
        succeed was removed from the spool. For callers that pace sending themselves.
        """
        return self._sender.drain_once()

    def flush(self, timeout: float | None = 30.0) -> int:
        """Send everything spooled now, retrying with backoff; events acknowledged.

        Raises :class:`~producers.errors.TransportError` if ``timeout`` passes first (the events
        stay spooled and will be sent later).
        """
        return self._sender.flush(timeout)

    # -- state -----------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Events spooled and not yet acknowledged."""
        return self.spool.depth

    def stats(self) -> ProducerStats:
        """Counters for dashboards and tests."""
        spool = self.spool.stats()
        sent = self._sender.counters
        return ProducerStats(
            depth=spool.depth,
            delivered=sent.delivered,
            rejected_by_peer=sent.rejected_by_peer,
            quarantined=spool.quarantined,
            refused_full=spool.refused_full,
            dropped_heartbeats=spool.dropped_heartbeats,
            send_failures=sent.send_failures,
            last_error=sent.last_error,
        )

    def close(self, timeout: float = 5.0) -> None:
        """Stop the sender, try to send what is left for ``timeout`` s, close the spool.

        What could not be sent stays in the spool for the next start.
        """
        self._sender.stop(timeout)
        if self.spool.depth and timeout > 0:
            try:
                self._sender.flush(timeout)
            except Exception as exc:  # the events are safe in the spool
                logger.warning("closing with events spooled depth=%d: %s", self.spool.depth, exc)
        self.spool.close()
        if self._owns_transport:
            self.transport.close()

    def __enter__(self) -> EdgeProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Output column -> hex digit of the random bytes (None: a dash) for the 8-4-4-4-12 text form.
_UUID_LAYOUT: list[int | None] = [
    None if p in (8, 13, 18, 23) else p - sum(p > d for d in (8, 13, 18, 23)) for p in range(36)
]
_VARIANT = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")


def _event_ids(n: int) -> list[str]:
    """``n`` random UUID4s in canonical form, like :func:`classtrace.ids.new_event_id` (122
    random bits each) but from one ``os.urandom`` call, laid out column by column with strided
    slice assignments (36 C-level copies per call, none per id): ~0.2 µs an id against ~3 µs
    for ``str(uuid.uuid4())``, and ids were a large share of the SDK's per-event cost."""
    digits = os.urandom(16 * n).hex().encode()
    out = bytearray(b" " * (37 * n))  # 36 characters and a separator per id
    for column, digit in enumerate(_UUID_LAYOUT):
        if digit is None:
            out[column::37] = b"-" * n
        elif digit == 12:
            out[column::37] = b"4" * n  # version
        elif digit == 16:
            out[column::37] = digits[16::32].translate(_VARIANT)  # RFC 4122 variant: 8, 9, a, b
        else:
            out[column::37] = digits[digit::32]
    return out.decode().split()


def _fill_column(batch: list[pb.Event], name: str, default: str) -> list[str]:
    """Every event's string field ``name``, set to ``default`` where it is empty."""
    values = [getattr(ev, name) for ev in batch]
    if "" in values:
        for i, ev in enumerate(batch):
            if not values[i]:
                setattr(ev, name, default)
                values[i] = default
    return values


def _fill_times(batch: list[pb.Event], now: float) -> None:
    """``occurred_at`` = ``now`` where unset; any ``received_at`` cleared (stamped at ingest)."""
    now_s, now_n = split_ns(int(now * 1e9))
    for ev in batch:
        if not ev.HasField("occurred_at"):
            occurred = ev.occurred_at
            occurred.seconds = now_s
            occurred.nanos = now_n
        if ev.HasField("received_at"):
            ev.ClearField("received_at")


def _fill_kinds(
    batch: list[pb.Event], devices: list[str], kinds: Mapping[str, pb.DeviceKind.ValueType]
) -> None:
    """``device_kind`` from the producer's ``device_kinds`` where an event leaves it unset."""
    for ev, device in zip(batch, devices, strict=True):
        if ev.device_kind == _UNSET_KIND:
            kind = kinds.get(device)
            if kind is not None:
                ev.device_kind = kind


def _number(batch: list[pb.Event], devices: list[str], last_seqs: Mapping[str, int]) -> dict[str, int]:
    """Give each event its device's next ``seq``; the last seq per device of the call."""
    seqs: dict[str, int] = {}
    for ev, device in zip(batch, devices, strict=True):
        seq = seqs.get(device) or last_seqs.get(device, 0)
        seqs[device] = ev.seq = seq + 1
    return seqs


def _serialise(batch: list[pb.Event]) -> list[bytes]:
    """Each event serialised once, framed as an ``EventBatch`` item (see :func:`_as_batch_item`)."""
    try:
        return [_ITEM_PREFIXES[len(b)] + b for b in map(_SERIALIZE, batch)]
    except IndexError:  # an event of 16 KiB or more: a longer length prefix
        return [_as_batch_item(b) for b in map(_SERIALIZE, batch)]


def _validate(batch: list[pb.Event], now: float) -> None:
    """Raise the first event's ValidationError, its field prefixed with ``events[i].``."""
    for i, ev in enumerate(batch):
        try:
            read_event(ev, now)
        except ValidationError as exc:
            raise ValidationError(f"events[{i}].{exc.field}", exc.reason) from None


def _group(
    classrooms: list[str], devices: list[str], payloads: list[str | None], items: list[bytes]
) -> dict[tuple[str, str, bool], list[bytes]]:
    """The items by (classroom, device, heartbeat-or-not): the spool's rows never mix them."""
    keys = list(zip(classrooms, devices, [p == "heartbeat" for p in payloads], strict=True))
    if keys.count(keys[0]) == len(keys):  # one device, one kind: the usual call
        return {keys[0]: items}
    groups: dict[tuple[str, str, bool], list[bytes]] = {}
    for key, item in zip(keys, items, strict=True):
        group = groups.get(key)
        if group is None:
            group = groups[key] = []
        group.append(item)
    return groups


def _set_time(ev: pb.Event, when: datetime | float) -> None:
    if isinstance(when, datetime):
        datetime_to_ts(when, ev.occurred_at)
    else:
        seconds_to_ts(when, ev.occurred_at)


# An EventBatch item is field 1, length-delimited: tag 0x0A, the varint length, the Event bytes.
_SERIALIZE = pb.Event.SerializeToString
_ITEM_PREFIXES = [
    bytes([0x0A, n]) if n < 0x80 else bytes([0x0A, n & 0x7F | 0x80, n >> 7]) for n in range(1 << 14)
]


def _as_batch_item(event: bytes) -> bytes:
    """``event`` (serialised ``Event``) framed as one item of an ``EventBatch``: joining items
    gives the batch's bytes without copying events into a batch message (upb's ``extend``
    copies each one, about twice the cost of serialising it)."""
    n = len(event)
    if n < 1 << 14:
        return _ITEM_PREFIXES[n] + event
    prefix = bytearray(b"\x0a")
    while n >= 0x80:
        prefix.append(n & 0x7F | 0x80)
        n >>= 7
    prefix.append(n)
    return bytes(prefix) + event


def _chunks(groups: dict[tuple[str, str, bool], list[bytes]]) -> list[NewChunk]:
    """Spool rows of (classroom, device, heartbeat-or-not) groups, CHUNK_EVENTS events per row."""
    chunks: list[NewChunk] = []
    for (classroom, device, heartbeat), group in groups.items():
        for start in range(0, len(group), CHUNK_EVENTS):
            part = group[start : start + CHUNK_EVENTS]
            chunks.append(NewChunk(classroom, device, len(part), b"".join(part), heartbeat))
    return chunks
