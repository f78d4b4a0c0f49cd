"""Errors of the ClickHouse sink, and how it reacts to each.

::

    ClasstraceError                         (classtrace.errors)
    ├── StoreError                          ClickHouse failed; ``code`` = ClickHouse error code
    │   └── InsertError                     an insert of one block failed (``table``, ``token``)
    │       ├── TransientInsertError        down, slow, overloaded, schema not there yet:
    │       │                               back off and retry the same block with the same
    │       │                               deduplication token; offsets stay uncommitted
    │       └── RejectedDataError           ClickHouse (or the Native encoder) refused the data
    │                                       itself: bisect the block down to the poison rows,
    │                                       insert the rest, dead-letter the poison — never retry
    └── SinkError                           the sink service itself
        └── SinkStopped                     stop() was asked while a batch still waited for
                                            ClickHouse: the batch is abandoned uncommitted, so
                                            Kafka delivers it again after the restart (no loss)

A record that does not decode and a row ClickHouse refuses are not raised past the record that
caused them: they become ``dead_letters`` rows (errors as data, docs/DESIGN.md §8). Events are not
validated here: classtrace.events.v1 is trusted (docs/DESIGN.md §9).
"""

from __future__ import annotations

from classtrace.errors import ClasstraceError, StoreError

__all__ = ["InsertError", "RejectedDataError", "SinkError", "SinkStopped", "TransientInsertError"]


class InsertError(StoreError):
    """An insert of one block into ``table`` failed; ``token`` is its deduplication token."""

    def __init__(self, message: str, table: str, token: str, code: int | None = None) -> None:
        super().__init__(f"insert into {table}: {message}", code)
        self.table = table
        self.token = token


class TransientInsertError(InsertError):
    """ClickHouse could not take the block now; the same block is retried after a backoff."""


class RejectedDataError(InsertError):
    """ClickHouse refused the block's data; retrying the same rows would fail forever."""


class SinkError(ClasstraceError):
    """The sink service failed."""


class SinkStopped(SinkError):
    """The service stopped before a pending batch reached ClickHouse; it stays uncommitted."""
