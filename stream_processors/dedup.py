"""Which events an aggregate has already counted: duplicates (same event) never change a metric.

Every stored aggregate (a lesson, a window) carries its own :class:`SeenEvents`, written in the
same table value as the counts it guards. Restored together from the changelog, they always
agree, so a record re-delivered after a crash is recognised event by event and never recounted,
whatever the arrival order.

An event is identified by ``(device_id, seq)``: DESIGN §4 makes seq per-device increasing, and
the EdgeProducer persists its counter with the spool so a restarted device never reuses a number
(producers/spool). A device's events of one lesson or window occupy a narrow range of seqs, so
one bitmap per device (base seq + Python int of bits) holds them in a few bytes per event — far
less than a set of UUIDs (FIELD-NOTES: keep state values small). Events without a seq (0) and
seqs too far from the device's range fall back to an explicit set.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_SPAN", "SeenEvents"]

MAX_SPAN = 1 << 16
"""Widest seq range (bits) one device's bitmap may cover; beyond it seqs go to the explicit set."""


class SeenEvents:
    """A set of (device_id, seq) — or event_id when seq is 0 — with cheap add-if-new."""

    __slots__ = ("devices", "other")

    def __init__(self) -> None:
        self.devices: dict[str, list[int]] = {}  # device_id → [base seq, high seq, bits]
        self.other: set[str] = set()

    def add(self, device_id: str, seq: int, event_id: str) -> bool:
        """Remember the event; True when it was not seen before (so it must be counted)."""
        if seq == 0:
            return self._add_other(event_id)
        entry = self.devices.get(device_id)
        if entry is None:
            self.devices[device_id] = [seq, seq, 1]
            return True
        base, high, bits = entry
        if base <= seq <= high:
            mask = 1 << (seq - base)
            if bits & mask:
                return False
            entry[2] = bits | mask
            return True
        # Seqs outside the bitmap's span live in ``other``, which is nearly always empty: the
        # key is built only when it is not (events in order take this path once each).
        if self.other and f"{device_id}\x00{seq}" in self.other:
            return False
        if seq > high:
            if seq - base >= MAX_SPAN:
                return self._add_other(f"{device_id}\x00{seq}")
            entry[1] = seq
            entry[2] = bits | (1 << (seq - base))
            return True
        if high - seq >= MAX_SPAN:
            return self._add_other(f"{device_id}\x00{seq}")
        entry[0] = seq
        entry[2] = (bits << (base - seq)) | 1
        return True

    def _add_other(self, key: str) -> bool:
        if key in self.other:
            return False
        self.other.add(key)
        return True

    def to_obj(self) -> dict[str, Any]:
        """JSON-able form (bitmaps as hex strings: they outgrow 64-bit JSON numbers)."""
        return {
            "d": {dev: [b, h, format(bits, "x")] for dev, (b, h, bits) in self.devices.items()},
            "o": sorted(self.other),
        }

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> SeenEvents:
        """Inverse of :meth:`to_obj`."""
        seen = cls()
        seen.devices = {dev: [b, h, int(bits, 16)] for dev, (b, h, bits) in obj["d"].items()}
        seen.other = set(obj["o"])
        return seen
