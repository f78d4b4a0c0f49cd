"""``classtrace query "SQL"``: run SQL on the configured ClickHouse and print the result (docs/DESIGN.md §5).

Works against a ClickHouse server, the embedded chDB of the data dir (creating the schema on a
fresh one), and — while ``classtrace up`` owns that chDB — through the owner's HTTP endpoint,
found in the data dir's runtime file. ``--format table`` (default) prints an aligned table,
``csv`` CSV with a header line, ``json`` one JSON object per row (ClickHouse's JSONEachRow).
SQL that ends with its own ``FORMAT`` clause is printed exactly as ClickHouse returns it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from classtrace.settings import Settings

__all__ = ["register", "returns_rows", "run"]

_DESCRIPTION = """Run one SQL statement on the configured ClickHouse and print the result.

Works against a ClickHouse server (--clickhouse-url), the embedded chDB of the data dir (the
schema is created on a fresh one), and a running `classtrace up` on the same data dir (through
its HTTP endpoint, found in the data dir's runtime file).

  table  an aligned table (default)
  csv    CSV with a header line
  json   one JSON object per row, like ClickHouse's JSONEachRow

SQL ending with its own FORMAT clause is printed exactly as ClickHouse returns it.
Example: classtrace query "SELECT kind, count() FROM events FINAL GROUP BY kind"
"""
_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_ROW_KEYWORDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "VALUES", "FROM"}
)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+\w+\s*$", re.IGNORECASE)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``query`` subcommand."""
    parser = subparsers.add_parser(
        "query",
        help="run SQL on the configured ClickHouse (embedded, server, or a running `classtrace up`)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "sql", metavar="SQL", help='one SQL statement, e.g. "SELECT count() FROM events FINAL"'
    )
    parser.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="table (aligned, default), csv (with a header line) or json (one object per row)",
    )
    parser.add_argument(
        "--database",
        default=None,
        metavar="DB",
        help="default database for unqualified table names (default: the URL's, else classtrace)",
    )
    parser.set_defaults(func=run)


def returns_rows(sql: str) -> bool:
    """Whether ``sql`` yields a result set (SELECT, SHOW, DESCRIBE …) rather than only an effect."""
    rest = _COMMENTS.sub("", sql, count=1).lstrip("(")
    match = re.match(r"[A-Za-z]+", rest)
    return match is not None and match.group(0).upper() in _ROW_KEYWORDS


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Connect, run ``args.sql`` and print its result; errors become a message and exit code 2."""
    from classtrace.clickhouse import DEFAULT_DATABASE, close_quietly, connect, resolve_target, store_errors
    from classtrace.migrate import apply_migrations

    target = resolve_target(settings)
    client = connect(target, database=args.database)
    try:
        if target.kind == "chdb":
            # This process opened the engine itself: make sure the §6 schema exists.
            apply_migrations(client, DEFAULT_DATABASE)
        sql = args.sql.strip().rstrip(";").strip()
        with store_errors("query failed"):
            if not returns_rows(sql):
                client.command(sql)
                print("Ok.", file=sys.stderr)
            elif _TRAILING_FORMAT.search(sql):
                _write_bytes(client.raw_query(sql))
            elif args.format == "csv":
                _write_bytes(client.raw_query(sql, fmt="CSVWithNames"))
            elif args.format == "json":
                _write_bytes(client.raw_query(sql, fmt="JSONEachRow"))
            else:
                result = client.query(sql)
                _print_table(result.column_names, result.result_rows)
    finally:
        close_quietly(client)
    return 0


def _write_bytes(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    return str(value)


def _print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    # Piped output must not be cut to 80 columns: only a terminal's width limits the table.
    tty = sys.stdout.isatty()
    console = Console(width=None if tty else 100_000, highlight=False, soft_wrap=not tty)
    console.print(table)
    print(f"{len(rows)} row{'s' if len(rows) != 1 else ''} in set.", file=sys.stderr)
