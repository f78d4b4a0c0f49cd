"""Errors of the producers stage (SDK, gateway, registry), rooted in ``ClasstraceError``.

The tree, with what each error carries so the caller can act::

    ClasstraceError                      (classtrace.errors)
    ├── ValidationError                  an event broke docs/DESIGN.md §4 (field, reason): fix the event
    └── ProducerError
        ├── SpoolError                   the local spool failed (disk, corruption, locked)
        │   └── SpoolFull                the bounded spool is full (depth, capacity): back off,
        │                                the sender is behind; nothing was written
        ├── TransportError               a send failed (retryable): keep the events, retry later
        │   │                            with backoff; ``retry_after`` when the peer said so
        │   └── RejectedBatch            the peer refused the whole batch for good (status,
        │                                message): retrying the same bytes cannot succeed
        └── RegistryError                the device registry could not be read or written
            └── UnknownDevice            revoke/lookup of a device that is not registered

``SpoolFull`` is the only error ``EdgeProducer.send_events`` raises for a healthy device: the
spool policy (see :mod:`producers.spool.sqlite`) is explicit instead of silently dropping data.
"""

from __future__ import annotations

from classtrace.errors import ClasstraceError

__all__ = [
    "ProducerError",
    "RegistryError",
    "RejectedBatch",
    "SpoolError",
    "SpoolFull",
    "TransportError",
    "UnknownDevice",
]


class ProducerError(ClasstraceError):
    """Root of the producers stage's errors."""


class SpoolError(ProducerError):
    """The local spool (SQLite file) failed: the events of the failing call were not stored."""


class SpoolFull(SpoolError):
    """The spool holds ``capacity`` events already; the new events were not stored."""

    def __init__(self, depth: int, capacity: int, wanted: int) -> None:
        super().__init__(
            f"spool full: {depth} of {capacity} events waiting, {wanted} more refused "
            "(the sender is behind or the network is down)"
        )
        self.depth = depth
        self.capacity = capacity
        self.wanted = wanted


class TransportError(ProducerError):
    """A send failed in a way that may succeed later (network, broker, 5xx, 401 not yet known).

    ``retry_after`` is the delay the peer asked for (HTTP ``Retry-After``), in seconds.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RejectedBatch(TransportError):
    """The peer refused the whole batch (HTTP 400/413/415): the same bytes will never pass."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class RegistryError(ProducerError):
    """The device registry (topic ``classtrace.devices.v1`` or its data-dir copy) failed."""


class UnknownDevice(RegistryError):
    """No registration for this device (``school_id``/``device_id``)."""

    def __init__(self, school_id: str, device_id: str) -> None:
        super().__init__(f"no device {device_id!r} registered at school {school_id!r}")
        self.school_id = school_id
        self.device_id = device_id
