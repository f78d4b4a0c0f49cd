"""Carrying out erasures in ClickHouse (docs/ERASURE.md): delete, blank, and record in the audit.

The sink executes every erasure of the ledger because it is the one writer of the tables: it
runs an erasure after inserting every batch it read before it learned of it, and it drops the
person's events from every batch after (:meth:`classtrace.erasure.ErasureSet.scrub`), so no
row can land behind the delete. Rows are found by the digest the ledger holds
(:func:`classtrace.erasure.subject_sql`), never by an id in clear.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from classtrace.erasure import Erasure, Kind, subject_sql
from classtrace.migrate import quote_identifier

__all__ = ["TARGETS", "ErasureExecutor", "Target"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where a kind of person is stored, and what becomes of the rows."""

    table: str
    column: str
    action: Literal["delete", "blank"]


TARGETS: Mapping[Kind, tuple[Target, ...]] = {
    # A student's events are theirs alone: deleted. Lesson aggregates name no student.
    "student": (Target("events", "student_id", "delete"),),
    # A teacher's lessons and teaching events are the class's record too: kept, without the id.
    "teacher": (Target("events", "teacher_id", "blank"), Target("lesson_summary", "teacher_id", "blank")),
}


class CommandClient(Protocol):
    """The part of a clickhouse-connect client the executor calls."""

    def command(
        self, cmd: str, parameters: Any = None, data: Any = None, settings: dict[str, Any] | None = None
    ) -> Any: ...

    def insert(
        self, table: str | None = None, data: Any = None, column_names: Any = "*", database: str | None = None
    ) -> Any: ...


_AUDIT_COLUMNS = (
    "erasure_id", "kind", "school_id", "subject_sha256", "requested_at", "executed_at",
    "rows_deleted", "rows_blanked", "tables",
)  # fmt: skip


class ErasureExecutor:
    """Runs erasures against one database and writes one ``erasures`` audit row each."""

    def __init__(self, client: CommandClient, database: str) -> None:
        self.client = client
        self.database = database
        self._db = quote_identifier(database)

    def done(self, erasure: Erasure) -> bool:
        """True when the audit already has this request (a restart re-reads the whole ledger)."""
        found = self.client.command(
            f"SELECT count() FROM {self._db}.erasures WHERE erasure_id = {{id:String}}",
            parameters={"id": erasure.erasure_id},
        )
        return int(found) > 0

    def execute(self, erasure: Erasure) -> tuple[int, int]:
        """Delete or blank the person's rows and record it; ``(rows_deleted, rows_blanked)``.

        Idempotent: run again, it finds nothing left and records the request once more (the
        audit's key collapses the repeat under FINAL).
        """
        deleted = blanked = 0
        params = {"school": erasure.school_id, "subject": erasure.subject}
        for target in TARGETS[erasure.kind]:
            table = f"{self._db}.{quote_identifier(target.table)}"
            where = (
                f"school_id = {{school:String}} AND {target.column} != '' "
                f"AND {subject_sql(erasure.kind, target.column)} = {{subject:String}}"
            )
            n = int(self.client.command(f"SELECT count() FROM {table} WHERE {where}", parameters=params))
            if not n:
                continue
            if target.action == "delete":
                statement = f"ALTER TABLE {table} DELETE WHERE {where}"
                deleted += n
            else:
                statement = f"ALTER TABLE {table} UPDATE {target.column} = '' WHERE {where}"
                blanked += n
            # mutations_sync = 2: return once every replica has applied it, so the audit is true.
            self.client.command(statement, parameters=params, settings={"mutations_sync": 2})
        row = [
            erasure.erasure_id, erasure.kind, erasure.school_id, erasure.subject,
            datetime.fromtimestamp(erasure.requested_ms / 1000, UTC), datetime.now(UTC), deleted, blanked,
            [t.table for t in TARGETS[erasure.kind]],
        ]  # fmt: skip
        self.client.insert(
            "erasures",
            [row],
            column_names=list(_AUDIT_COLUMNS),
            database=self.database,
        )
        logger.info(
            "erasure executed erasure_id=%s kind=%s school_id=%s deleted=%d blanked=%d",
            erasure.erasure_id, erasure.kind, erasure.school_id, deleted, blanked,
        )  # fmt: skip
        return deleted, blanked
