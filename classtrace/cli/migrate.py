"""``classtrace migrate``: apply the numbered ClickHouse migrations and say what was applied.

Runs against the configured ClickHouse — a server, the embedded chDB of the data dir, or a
running ``classtrace up`` through its HTTP endpoint. Safe to run any number of times.
"""

from __future__ import annotations

import argparse

from classtrace.settings import Settings

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``migrate`` subcommand."""
    parser = subparsers.add_parser(
        "migrate",
        help="create or upgrade the ClickHouse schema (idempotent)",
        description="Apply the numbered ClickHouse migrations the database lacks, bring each table's "
        "retention (TTL) to CLASSTRACE_RETENTION_<TABLE>_DAYS or its default (docs/RETENTION.md), and "
        "print what changed. Works against a server, the embedded chDB, or a running `classtrace up`; "
        "safe to run any number of times.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--database",
        default=None,
        metavar="DB",
        help="database to migrate (default: the URL's, else classtrace)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Apply the missing migrations; print one line per migration applied, or that none was due."""
    from classtrace.clickhouse import close_quietly, connect, resolve_target
    from classtrace.migrate import apply_migrations, apply_retention, load_migrations

    target = resolve_target(settings)
    client = connect(target, database=args.database)
    try:
        database = str(client.database)
        applied = apply_migrations(client, database)
        retention = apply_retention(client, database, settings.retention_days)
    finally:
        close_quietly(client)
    names = {m.version: m.name for m in load_migrations()}
    for version in applied:
        print(f"applied {version:04d}_{names[version]}")
    for table, days in retention.items():
        print(f"retention of {table} set to {days} days")
    latest = max(names, default=0)
    state = f"{len(applied)} applied now" if applied else "already up to date"
    print(f"database {database} at {target.redacted}: schema version {latest:04d}, {state}")
    return 0
