"""The seams of the sink, as Protocols: what it needs of a ClickHouse client and of a writer.

The sink never imports ``clickhouse_connect`` (docs/ARCHITECTURE.md): it is handed a client made by
:func:`classtrace.clickhouse.connect` — chDB or HTTP, the same calls — and uses only
:class:`InsertClient`'s methods. Tests wrap a real client in a fake that fails on demand, which
is how outages and refused rows are simulated without a second ClickHouse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sinks.rows import Block

__all__ = ["BlockWriter", "InsertClient"]


class InsertClient(Protocol):
    """The part of a clickhouse-connect client the sink calls."""

    def insert(
        self,
        table: str | None = None,
        data: Sequence[Sequence[Any]] | None = None,
        column_names: str | Sequence[str] = "*",
        database: str | None = None,
        column_types: Any = None,
        column_type_names: Sequence[str] | None = None,
        column_oriented: bool = False,
        settings: dict[str, Any] | None = None,
        context: Any = None,
        transport_settings: dict[str, str] | None = None,
    ) -> Any: ...

    def raw_insert(
        self,
        table: str,
        column_names: Sequence[str] | None = None,
        insert_block: Any = None,
        settings: dict[str, Any] | None = None,
        fmt: str | None = None,
        compression: str | None = None,
        transport_settings: dict[str, str] | None = None,
    ) -> Any: ...

    def command(
        self,
        cmd: str,
        parameters: Any = None,
        data: Any = None,
        settings: dict[str, Any] | None = None,
        use_database: bool = True,
        external_data: Any = None,
        transport_settings: dict[str, str] | None = None,
    ) -> Any: ...


class BlockWriter(Protocol):
    """Writes one table's block once, idempotently under ``token``.

    Returns the rows it could not write because ClickHouse refused them, as
    ``(block index, reason)``; raises :class:`~sinks.errors.SinkStopped` when stopped while
    ClickHouse is unavailable. Anything else it retries itself.
    """

    def write(
        self, block: Block, token: str, settings: Mapping[str, Any] | None = None
    ) -> list[tuple[int, str]]: ...
