"""Numbered, idempotent schema migrations of the ClickHouse database (docs/DESIGN.md §6).

The files ``classtrace/migrations/NNNN_name.sql`` are applied in order of their number; each
applied version is recorded with the SHA-256 of its file in ``<db>.schema_migrations``, so a
second run applies nothing. Statements are idempotent themselves (``IF NOT EXISTS``, ``OR
REPLACE``): a migration that failed half-way, or two processes migrating at once, simply
re-run them. The target database is a parameter (``${db}`` in the files), so tests migrate
random databases side by side.

ClickHouse has no transactional DDL, hence the rules: never edit an applied file (its checksum
is checked and a mismatch raises :class:`~classtrace.errors.MigrationError`); add the next
number instead.

Retention (docs/RETENTION.md) is the one schema property an operator configures: migration 0008
sets the default TTLs, and :func:`apply_retention`, run after the migrations by ``classtrace
migrate`` and ``classtrace up``, brings each table to the configured ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from classtrace.clickhouse import DEFAULT_DATABASE, Client, store_errors
from classtrace.errors import ConfigError, MigrationError, StoreError
from classtrace.retention import check_overrides, parse_ttl, table_ttls, ttl_expression

__all__ = [
    "MIGRATIONS_TABLE",
    "Migration",
    "applied_migrations",
    "apply_migrations",
    "apply_retention",
    "load_migrations",
    "quote_identifier",
    "split_statements",
]

logger = logging.getLogger(__name__)

MIGRATIONS_TABLE = "schema_migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PLACEHOLDER = "${db}"


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    sql: str
    """The file's text; ``${db}`` stands for the target database."""

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text (of the template, so it is the same for every database)."""
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self, database: str) -> list[str]:
        """The file's statements with ``${db}`` replaced by the quoted ``database``."""
        return split_statements(self.sql.replace(_PLACEHOLDER, quote_identifier(database)))


@cache
def load_migrations() -> tuple[Migration, ...]:
    """Every migration shipped in ``classtrace.migrations``, ordered by version."""
    found: dict[int, Migration] = {}
    for entry in resources.files("classtrace.migrations").iterdir():
        match = _FILE.match(entry.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise MigrationError(version, f"two files carry this number: {found[version].name}, {entry.name}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return tuple(found[v] for v in sorted(found))


def quote_identifier(name: str) -> str:
    """``name`` as a back-quoted ClickHouse identifier."""
    if not name or "\x00" in name:
        raise StoreError(f"invalid ClickHouse identifier {name!r}")
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _quote_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def split_statements(sql: str) -> list[str]:
    """Split SQL text at ``;`` outside quotes and comments; drop statements that are only comments.

    ClickHouse runs one statement per request, and a ``;`` may well appear inside a COMMENT
    string, hence a small lexer rather than ``str.split``.
    """
    statements: list[str] = []
    start = i = 0
    has_code = False
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if ch in "'`\"":
            has_code = True
            i += 1
            while i < n and sql[i] != ch:
                i += 2 if sql[i] == "\\" else 1
            i += 1
            continue
        if ch == ";":
            if has_code:
                statements.append(sql[start:i].strip())
            start, has_code = i + 1, False
        elif not ch.isspace():
            has_code = True
        i += 1
    if has_code:
        statements.append(sql[start:].strip())
    return statements


def _bootstrap(client: Client, database: str) -> None:
    db = quote_identifier(database)
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}", use_database=False)
    client.command(
        f"""CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE}
        (
            version    UInt32 COMMENT 'Number of the migration file',
            name       String COMMENT 'Name part of the file',
            checksum   String COMMENT 'SHA-256 of the file as applied',
            applied_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC') COMMENT 'When it was applied'
        )
        ENGINE = ReplacingMergeTree
        ORDER BY version
        COMMENT 'Schema migrations applied by classtrace (classtrace/migrations/NNNN_*.sql)'""",
        use_database=False,
    )


def applied_migrations(client: Client, database: str = DEFAULT_DATABASE) -> dict[int, str]:
    """Version → checksum of the migrations recorded in ``database`` (empty when none)."""
    db = quote_identifier(database)
    with store_errors(f"cannot read {database}.{MIGRATIONS_TABLE}"):
        exists = client.command(f"EXISTS TABLE {db}.{MIGRATIONS_TABLE}", use_database=False)
        if str(exists).strip() != "1":
            return {}
        raw = client.raw_query(
            f"SELECT version, any(checksum) AS checksum FROM {db}.{MIGRATIONS_TABLE} GROUP BY version",
            fmt="JSONEachRow",
            use_database=False,
        )
    rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
    return {int(row["version"]): str(row["checksum"]) for row in rows}


def apply_migrations(client: Client, database: str = DEFAULT_DATABASE) -> list[int]:
    """Apply the migrations ``database`` lacks, in order; return the versions applied now.

    Creates the database when missing. Works whatever the client's default database is (every
    statement names ``database``). Raises :class:`MigrationError` when a statement fails or an
    applied file was edited since.
    """
    migrations = load_migrations()
    try:
        with store_errors(f"cannot prepare database {database}"):
            _bootstrap(client, database)
    except StoreError as exc:
        raise MigrationError(0, str(exc), exc.code) from exc
    done = applied_migrations(client, database)
    known = {m.version for m in migrations}
    if unknown := sorted(set(done) - known):
        logger.warning(
            "database has migrations this code does not know database=%s versions=%s", database, unknown
        )
    applied: list[int] = []
    for migration in migrations:
        recorded = done.get(migration.version)
        if recorded is not None:
            if recorded != migration.checksum:
                raise MigrationError(
                    migration.version,
                    f"{migration.name} was applied with checksum {recorded[:12]}… but the file now "
                    f"has {migration.checksum[:12]}…; never edit an applied migration, add a new one",
                )
            continue
        _apply_one(client, database, migration)
        applied.append(migration.version)
    return applied


def _apply_one(client: Client, database: str, migration: Migration) -> None:
    for statement in migration.statements(database):
        try:
            with store_errors(f"{migration.name}"):
                client.command(statement, use_database=False)
        except StoreError as exc:
            raise MigrationError(migration.version, str(exc), exc.code) from exc
    db = quote_identifier(database)
    with store_errors(f"cannot record migration {migration.version}"):
        client.command(
            f"INSERT INTO {db}.{MIGRATIONS_TABLE} (version, name, checksum) VALUES "
            f"({migration.version}, {_quote_string(migration.name)}, {_quote_string(migration.checksum)})",
            use_database=False,
        )
    logger.info(
        "migration applied database=%s version=%04d name=%s", database, migration.version, migration.name
    )


def apply_retention(
    client: Client, database: str = DEFAULT_DATABASE, retention_days: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Give every table the TTL of the retention policy with ``retention_days`` applied.

    Returns table → days for the tables changed now. A table whose TTL already matches is not
    touched, so a second run is a no-op: each ``MODIFY TTL`` also schedules a ``MATERIALIZE TTL``
    mutation that rewrites the table's parts (which is what removes rows older than a shortened
    retention), not something to repeat at every start. A table that is not a MergeTree (on a
    cluster, the Distributed table; its ``_local`` table carries the TTL) is skipped with a warning.
    """
    try:
        wanted = table_ttls(check_overrides(retention_days or {}))
    except ValueError as exc:
        raise ConfigError("retention_days", str(exc)) from None
    db = quote_identifier(database)
    with store_errors(f"cannot read the tables of {database}"):
        raw = client.raw_query(
            f"SELECT name, engine, engine_full FROM system.tables WHERE database = {_quote_string(database)}",
            fmt="JSONEachRow",
            use_database=False,
        )
    tables = {row["name"]: row for row in (json.loads(line) for line in raw.splitlines() if line.strip())}
    changed: dict[str, int] = {}
    for table, (column, days) in wanted.items():
        row = tables.get(table)
        if row is None:
            raise StoreError(f"table {database}.{table} does not exist: apply the migrations first")
        if not str(row["engine"]).endswith("MergeTree"):
            logger.warning(
                "retention not set on a %s table database=%s table=%s", row["engine"], database, table
            )
            continue
        if parse_ttl(str(row["engine_full"])) == (column, days):
            continue
        with store_errors(f"cannot set the retention of {database}.{table}"):
            client.command(
                f"ALTER TABLE {db}.{quote_identifier(table)} MODIFY TTL {ttl_expression(column, days)}",
                use_database=False,
            )
        logger.info("retention set database=%s table=%s days=%d", database, table, days)
        changed[table] = days
    return changed
