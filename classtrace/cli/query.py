"""``classtrace query "SQL"``: run SQL on the configured ClickHouse and print the result (docs/DESIGN.md §5).

Works against a ClickHouse server, the embedded chDB of the data dir (creating the schema on a
fresh one), and — while ``classtrace up`` owns that chDB — through the owner's HTTP endpoint,
found in the data dir's runtime file. ``--format table`` (default) prints an aligned table,
``csv`` CSV with a header line, ``json`` one JSON object per row (ClickHouse's JSONEachRow).
SQL that ends with its own ``FORMAT`` clause is printed exactly as ClickHouse returns it.

Only reads run: the SQL must pass :func:`classtrace.sqlguard.check` (one SELECT, SHOW, DESCRIBE,
EXISTS or EXPLAIN; no table functions, host-reaching functions, ``INTO OUTFILE`` or
``SETTINGS``) on every backend, then runs with ``readonly=1`` on the embedded engine; through a
running stack it connects as :data:`~classtrace.sqlguard.READER_USER`, so the endpoint guards it too.

Every run is recorded on the access log (:mod:`classtrace.access`): the OS account (or the
``--as`` name) and the SHA-256 + length of the SQL, never its ``--param`` values.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from classtrace.errors import ConfigError
from classtrace.settings import Settings

__all__ = ["parameters", "register", "returns_rows", "run"]

_DESCRIPTION = """Run one read-only SQL statement on the configured ClickHouse and print the result.

Only SELECT / WITH ... SELECT, SHOW, DESCRIBE, EXISTS and EXPLAIN run; table functions (file,
url, s3, remote, numbers ...), functions that reach the host (file, dictGet ...), INTO OUTFILE
and SETTINGS clauses are refused (docs/ANALYSTS.md, "What classtrace query refuses").

Works against a ClickHouse server (--clickhouse-url), the embedded chDB of the data dir (the
schema is created on a fresh one), and a running `classtrace up` on the same data dir (through
its HTTP endpoint, found in the data dir's runtime file).

  table  an aligned table (default)
  csv    CSV with a header line
  json   one JSON object per row, like ClickHouse's JSONEachRow

SQL ending with its own FORMAT clause is printed exactly as ClickHouse returns it.
Values are bound, never pasted into the SQL: write {name:Type} where a value goes and give it
with --param name=value (ClickHouse's query parameters; repeat the flag for more).

Example: classtrace query "SELECT kind, count() FROM events FINAL GROUP BY kind"
Example: classtrace query "SELECT count() FROM events FINAL WHERE school_id = {school:String}" \
           --param school=S1
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
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        type=_param,
        help="bind a query parameter: the SQL names it as {NAME:Type} (repeatable)",
    )
    parser.add_argument(
        "--as",
        dest="as_viewer",
        default=None,
        metavar="NAME",
        help="who the query is run for, in the access log (default: the OS user; the OS user is kept too)",
    )
    parser.set_defaults(func=run)


_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _param(text: str) -> tuple[str, str]:
    """``name=value`` → (name, value); the value may itself contain '='."""
    name, sep, value = text.partition("=")
    if not sep or not _PARAM_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME of [A-Za-z0-9_], got {text!r}")
    return name, value


def parameters(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The ``--param`` pairs as clickhouse-connect parameters; a name given twice is an error."""
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise ConfigError("--param", f"{name!r} is given twice")
        out[name] = value
    return out


def returns_rows(sql: str) -> bool:
    """Whether ``sql`` yields a result set (SELECT, SHOW, DESCRIBE …) rather than only an effect."""
    rest = _COMMENTS.sub("", sql, count=1).lstrip("(")
    match = re.match(r"[A-Za-z]+", rest)
    return match is not None and match.group(0).upper() in _ROW_KEYWORDS


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Connect, guard and run ``args.sql`` and print its result; errors (a refusal too) become a
    message and exit code 2."""
    from classtrace.clickhouse import (
        DEFAULT_DATABASE,
        Target,
        close_quietly,
        connect,
        resolve_target,
        store_errors,
    )
    from classtrace.migrate import apply_migrations
    from classtrace.sqlguard import READER_USER, QueryRefused, check

    target = resolve_target(settings)
    if target.kind == "stack":  # ask the endpoint for a guarded, read-only session
        parts = urlsplit(target.url)
        netloc = f"{READER_USER}:{parts.password or ''}@{parts.netloc.rpartition('@')[2]}"
        target = Target(urlunsplit(parts._replace(netloc=netloc)), "stack")
    client = connect(target, database=args.database)
    try:
        if target.kind == "chdb":
            # This process opened the engine itself: make sure the §6 schema exists.
            apply_migrations(client, DEFAULT_DATABASE)
        sql = args.sql.strip().rstrip(";").strip()
        params = parameters(args.param)
        writer = None if target.kind == "stack" else client  # with no broker, the log goes in directly

        def guard_query(text: str, binds: Mapping[str, str]) -> str:
            return bytes(client.raw_query(text, parameters=dict(binds) or None, fmt="TSVRaw")).decode()

        # readonly=1 is our own fence on the engine we opened; a server enforces its account's
        # grants, the stack's endpoint its own readonly.
        fence = {"readonly": "1"} if target.kind == "chdb" else None
        with store_errors("query failed"):
            try:
                check(sql, guard_query, params, client.database or DEFAULT_DATABASE)
            except QueryRefused:
                _log_access(args, settings, sql, "denied", writer)
                raise
            _log_access(args, settings, sql, "allowed", writer)
            if _TRAILING_FORMAT.search(sql):
                _write_bytes(client.raw_query(sql, parameters=params, settings=fence))
            elif args.format == "csv":
                _write_bytes(client.raw_query(sql, parameters=params, fmt="CSVWithNames", settings=fence))
            elif args.format == "json":
                _write_bytes(client.raw_query(sql, parameters=params, fmt="JSONEachRow", settings=fence))
            else:
                result = client.query(sql, parameters=params, settings=fence)
                _print_table(result.column_names, result.result_rows)
    finally:
        close_quietly(client)
    return 0


def _log_access(args: argparse.Namespace, settings: Settings, sql: str, outcome: str, client: Any) -> None:
    """Record this run on the access log before any row is printed; a log that cannot be written is
    reported on stderr and does not stop the query (the analyst's work matters more than its log)."""
    from classtrace.access import AccessRecord, cli_identity, deliver, query_target
    from classtrace.errors import ClasstraceError
    from classtrace.runtime import read_runtime

    viewer_id, source = cli_identity(args.as_viewer)
    record = AccessRecord.new(viewer_id, None, "query", query_target(sql), outcome, source)
    runtime = None if settings.kafka_bootstrap else read_runtime(settings.data_dir)
    bootstrap = settings.kafka_bootstrap or (runtime.kafka_bootstrap if runtime else None)
    try:
        deliver([record], bootstrap=bootstrap, options=settings.kafka_options, client=client)
    except Exception as exc:  # any failure of the log is reported, never fatal
        reason = exc if isinstance(exc, ClasstraceError) else type(exc).__name__
        print(f"classtrace query: warning: access not logged: {reason}", file=sys.stderr)


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
