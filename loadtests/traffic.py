"""Realistic classroom traffic for load tests, stamped with fresh event ids at almost no cost.

A load generator on the same two cores as the stack must not spend them building protobufs. So
each load device takes a few hundred events from a simulated lesson (the simulator's realistic
mix of observations, traces, teaching segments, heartbeats), rebinds them to its own ids, and
serialises them once as ``EventBatch`` fragments. A request then copies the bytes and overwrites
only the last 12 hex digits of each event_id with a counter: ids stay valid UUIDs, unique per
run (``<run>-<device>-4000-8000-<counter>``), and the reconciler can tell this run's rows apart by
``school_id``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from classtrace.codec import varint
from classtrace.v1 import events_pb2 as pb
from smart_classroom_agents.classroom import classroom_stream
from smart_classroom_agents.runner import SimulationPlan, plan_classrooms

__all__ = ["LESSON_EVENTS", "BatchFactory", "LoadDevice", "load_devices", "template_events"]

_COUNTER_DIGITS = 12
_PLACEHOLDER = "0" * _COUNTER_DIGITS
_SEQ_TAG = b"\x40"  # field 8 (seq), varint
# seq is written as a 5-byte varint, padded (non-minimal but valid protobuf: parsers accept up to
# 10 bytes), so every event keeps its length and the batch its offsets.
_SEQ_WIDTH = 5
_SEQ_PLACEHOLDER = b"\x80" * (_SEQ_WIDTH - 1) + b"\x00"
# occurred_at (field 6) is appended by hand as a Timestamp of two padded varints (tag, length 12,
# 0x08 + seconds, 0x10 + nanos): fixed width, so it can be stamped per event like the seq.
_OCCURRED_HEAD = b"\x32\x0c\x08"
_NANOS_TAG = b"\x10"
_OCCURRED_WIDTH = len(_OCCURRED_HEAD) + _SEQ_WIDTH + len(_NANOS_TAG) + _SEQ_WIDTH
EVENT_SPACING_NS = 10_000_000
"""A batch's events are stamped 10 ms apart on a 10 ms grid, the last one at the moment it is
built: a live classroom's batch covers its last second or so, so it falls into one or two 10 s
windows."""
_LESSON_DIGITS = 5
LESSON_EVENTS = 2000
"""Events a load device sends per lesson before it moves to the next: a real classroom sends
about 1,000–2,000 per 40-minute lesson (docs/CAPACITY.md), so per-lesson state stays realistic."""


def _padded(v: int) -> bytes:
    """``v`` (< 2**35) as a 5-byte varint, spelled out."""
    padded = (v & 0x7F) | (v << 1 & 0x7F00) | (v << 2 & 0x7F0000) | (v << 3 & 0x7F000000)
    return ((v << 4 & 0x7F00000000) | padded | 0x80808080).to_bytes(_SEQ_WIDTH, "little")


# Per-event bytes, precomputed. A 5-byte varint's first two bytes hold the low 14 bits of the
# value, so a seq is _SEQ_LOW[low 14 bits] + its upper three bytes (the same for 16,384 seqs in
# a row); an id's 12 hex digits are 8 that change every 65,536 events and _HEX4[low 16 bits];
# event times lie on a 10 ms grid, whose 100 nanos values per second are _NANOS.
_LOW_SEQ_BITS = 14
_LOW_SEQ_MASK = (1 << _LOW_SEQ_BITS) - 1
_SEQ_LOW = [_padded(v)[:2] for v in range(1 << _LOW_SEQ_BITS)]
_HEX4 = [b"%04x" % v for v in range(1 << 16)]
_TICKS_PER_SECOND = 1_000_000_000 // EVENT_SPACING_NS
_NANOS = [_padded(i * EVENT_SPACING_NS) for i in range(_TICKS_PER_SECOND)]


@dataclass(frozen=True)
class LoadDevice:
    """One load-generating device: a classroom of its own, bound to one gateway token."""

    index: int
    school_id: str
    classroom_id: str
    device_id: str
    id_prefix: str
    """First 24 characters of every event_id it sends (``run8-dev4-4000-8000-``)."""


def load_devices(run: str, count: int) -> list[LoadDevice]:
    """``count`` devices of school ``lt-<run>``; ``run`` is 8 hex digits."""
    school = f"lt-{run}"
    return [
        LoadDevice(i, school, f"{school}-c{i:04d}", f"{school}-c{i:04d}-sim", f"{run}-{i:04x}-4000-8000-")
        for i in range(count)
    ]


def template_events(n: int = 400, seed: int = 0, now_ms: int | None = None) -> list[pb.Event]:
    """``n`` events of one simulated classroom's lesson, in emission order (the realistic mix)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    plan = SimulationPlan(classrooms=1, lessons=1, seed=seed, speed=0, lesson_minutes=15, break_minutes=0)
    start, rooms = plan_classrooms(plan, now)
    events = [ev for _, ev in classroom_stream(rooms[0], seed, b"loadtest", start) if ev.lesson_id]
    return events[:n]


class BatchFactory:
    """EventBatch bytes of ``batch_size`` events of one device, each with a fresh id and seq.

    Like a real EdgeProducer, the device numbers its events (``seq`` = 1, 2, …, which the worker
    deduplicates by), stamps them with the current time (``occurred_at``, the batch spanning its
    last second, see :data:`EVENT_SPACING_NS`) and moves to a new lesson every
    :data:`LESSON_EVENTS` events (lesson ids ``<classroom>-L00001``, …): a load test then
    exercises per-lesson and per-window state of realistic size, not one lesson holding a whole
    run or a request spread over minutes of event time.
    """

    def __init__(
        self,
        device: LoadDevice,
        templates: list[pb.Event],
        batch_size: int = 100,
        lesson_events: int = LESSON_EVENTS,
    ) -> None:
        self.device = device
        self.batch_size = batch_size
        self.lesson_events = lesson_events
        self.counter = 0
        lesson_placeholder = f"{device.classroom_id}-L{'0' * _LESSON_DIGITS}"
        # Each event as the constant bytes around its variable parts: the id's counter, the
        # lesson number, then (appended last) the seq and occurred_at.
        self._pieces: list[tuple[bytes, bytes, bytes]] = []
        for template in templates:
            event = pb.Event()
            event.CopyFrom(template)
            event.event_id = device.id_prefix + _PLACEHOLDER
            event.school_id, event.classroom_id, event.device_id = (
                device.school_id,
                device.classroom_id,
                device.device_id,
            )
            event.device_kind = pb.DEVICE_KIND_GATEWAY_SIM
            event.lesson_id = lesson_placeholder
            event.seq = 0
            event.ClearField("occurred_at")
            body = event.SerializeToString() + _SEQ_TAG + _SEQ_PLACEHOLDER + b"\0" * _OCCURRED_WIDTH
            # Field 1 (event_id) is serialised first: tag, length 36, then the id's 36 bytes.
            assert body[:2] == b"\x0a\x24", "event_id must be the first field"
            fragment = b"\x0a" + varint(len(body)) + body  # EventBatch.events: length-delimited
            id_at = len(fragment) - len(body) + 2 + 36 - _COUNTER_DIGITS
            lesson_at = fragment.index(lesson_placeholder.encode()) + len(lesson_placeholder) - _LESSON_DIGITS
            seq_at = len(fragment) - _OCCURRED_WIDTH - _SEQ_WIDTH
            assert id_at < lesson_at < seq_at
            self._pieces.append(
                (
                    fragment[:id_at],
                    fragment[id_at + _COUNTER_DIGITS : lesson_at],
                    fragment[lesson_at + _LESSON_DIGITS : seq_at],
                )
            )
        self._next = 0

    def next_batch(self, now_ns: int | None = None) -> tuple[bytes, int]:
        """(EventBatch bytes, events in it); ids, seqs and lessons continue the device's count.

        The last event occurred at ``now_ns`` (default: now) floored to the 10 ms grid, each
        earlier one 10 ms before. Per event this only picks precomputed bytes (the grid's
        nanos, the low bits of the id and the seq) and joins them: the generator shares the
        stack's two cores, and every µs it spends is one the stack cannot (docs/CAPACITY.md).
        """
        stamp = time.time_ns() if now_ns is None else now_ns
        size, counter, per_lesson = self.batch_size, self.counter, self.lesson_events
        if (counter + size) // per_lesson >= 10**_LESSON_DIGITS:
            raise OverflowError(f"device {self.device.device_id} ran out of lesson numbers")
        tick = stamp // EVENT_SPACING_NS - (size - 1)  # the first event's 10 ms tick
        parts: list[bytes] = []
        add = parts.extend
        pieces = self._pieces
        n = len(pieces)
        start = self._next
        lesson_end, lesson_bytes = 0, b""  # set at the first event
        id_high = seq_high = second_bytes = b""
        id_block = seq_block = second = -1
        for k in range(size):
            head, middle, tail = pieces[(start + k) % n]
            counter += 1
            if counter > lesson_end:
                lesson = 1 + (counter - 1) // per_lesson
                lesson_end, lesson_bytes = lesson * per_lesson, b"%05d" % lesson
            if counter >> 16 != id_block:
                id_block = counter >> 16
                id_high = b"%08x" % id_block
            if counter >> _LOW_SEQ_BITS != seq_block:
                seq_block = counter >> _LOW_SEQ_BITS
                seq_high = _padded(seq_block << _LOW_SEQ_BITS)[2:]
            seconds, hundredth = divmod(tick + k, _TICKS_PER_SECOND)
            if seconds != second:
                second, second_bytes = seconds, _OCCURRED_HEAD + _padded(seconds) + _NANOS_TAG
            add(
                (
                    head,
                    id_high,
                    _HEX4[counter & 0xFFFF],
                    middle,
                    lesson_bytes,
                    tail,
                    _SEQ_LOW[counter & _LOW_SEQ_MASK],
                    seq_high,
                    second_bytes,
                    _NANOS[hundredth],
                )
            )
        self.counter = counter
        self._next = (start + size) % n
        return b"".join(parts), size
