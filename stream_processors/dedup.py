"""Which events an aggregate has already counted: duplicates (same event) never change a metric.

Every stored aggregate (a lesson, a window) carries its own :class:`SeenEvents`, written in the
same table value as the counts it guards. Restored together from the changelog, they always
agree, so a record re-delivered after a crash is recognised event by event and never recounted,
whatever the arrival order.

An event is identified by ``(device_id, seq)``: docs/DESIGN.md §4 makes seq per-device increasing,
and the EdgeProducer persists its counter with the spool so a restarted device never reuses a number
(producers/spool). A device's events of one lesson or window occupy a narrow range of seqs, so
one bitmap per device (``[base, high, bytearray]``, bit ``i`` for seq ``base + i``) holds them
in a bit per seq — far less than a set of UUIDs (docs/FIELD-NOTES.md: keep state values small). The base
is a multiple of 8, so lowering it prepends whole bytes. Events without a seq (0) and seqs too
far from the device's range fall back to an explicit set.
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
        self.devices: dict[str, list[Any]] = {}  # device_id → [base seq, high seq, bytearray]
        self.other: set[str] = set()

    def add(self, device_id: str, seq: int, event_id: str) -> bool:
        """Remember the event; True when it was not seen before (so it must be counted)."""
        if seq == 0:
            return self._add_other(event_id)
        entry = self.devices.get(device_id)
        if entry is None:
            base = seq & ~7
            self.devices[device_id] = [base, seq, bytearray([1 << (seq - base)])]
            return True
        base, high, bits = entry
        i = seq - base
        if seq > high and i < MAX_SPAN:
            # The common case, a device's next event. Such a seq is never in ``other``: the
            # base only falls and ``high`` only rises, so it was never out of span before.
            byte_i = i >> 3
            if byte_i >= len(bits):
                bits.extend(bytes(byte_i + 1 - len(bits)))
            bits[byte_i] |= 1 << (i & 7)
            entry[1] = seq
            return True
        if base <= seq <= high:
            byte = bits[i >> 3]
            mask = 1 << (i & 7)
            if byte & mask:
                return False
            bits[i >> 3] = byte | mask
            return True
        if seq > high or high - seq >= MAX_SPAN:  # too far from the device's range
            return self._add_other(f"{device_id}\x00{seq}")
        if self.other and f"{device_id}\x00{seq}" in self.other:
            return False
        new_base = seq & ~7
        bits[0:0] = bytes((base - new_base) >> 3)
        bits[0] |= 1 << (seq - new_base)
        entry[0] = new_base
        return True

    def _add_other(self, key: str) -> bool:
        if key in self.other:
            return False
        self.other.add(key)
        return True

    def to_obj(self) -> dict[str, Any]:
        """JSON-able form: each bitmap as the hex of the integer whose bit i is seq base + i."""
        return {
            "d": {
                dev: [b, h, format(int.from_bytes(bits, "little"), "x")]
                for dev, (b, h, bits) in self.devices.items()
            },
            "o": sorted(self.other),
        }

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> SeenEvents:
        """Inverse of :meth:`to_obj`; also reads values whose base is not a multiple of 8."""
        seen = cls()
        for dev, (b, h, hex_bits) in obj["d"].items():
            base = b & ~7
            bits = int(hex_bits, 16) << (b - base)
            seen.devices[dev] = [base, h, bytearray(bits.to_bytes(((h - base) >> 3) + 1, "little"))]
        seen.other = set(obj["o"])
        return seen
