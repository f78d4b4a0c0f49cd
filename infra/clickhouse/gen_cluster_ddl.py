"""Generate the cluster variant of the schema from the same numbered migrations.

Single-node (chDB, one server) runs ``classtrace/migrations/NNNN_*.sql`` as they are. A cluster
(ClickHouse with Keeper, shards × replicas) runs ``infra/clickhouse/cluster/NNNN_*.sql``, made
here from the same files, so the two can never drift apart:

* ``CREATE TABLE db.t (...) ENGINE = XMergeTree(args)`` becomes a replicated local table
  ``db.t_local ON CLUSTER '{cluster}' ... ENGINE = ReplicatedXMergeTree('/clickhouse/tables/
  {shard}/{database}/t_local', '{replica}', args)`` plus ``db.t ON CLUSTER`` as a
  ``Distributed`` table over it, sharded by ``cityHash64(school_id)``. Writers and readers keep
  using ``db.t``; a school's rows (hence every ReplacingMergeTree key) live on one shard, so
  ``FINAL`` through the Distributed table is exact.
* ``non_replicated_deduplication_window`` is dropped: replicated tables deduplicate inserts by
  ``insert_deduplication_token`` by default.
* ``ALTER TABLE db.t`` goes to ``db.t_local ON CLUSTER``. Its column commands (``ADD``, ``MODIFY``,
  ``DROP``, ``RENAME``, ``COMMENT COLUMN``) also go to the Distributed ``db.t ON CLUSTER``, which
  otherwise keeps the columns it was created with and drops the new ones on insert and read
  (migration 0009); the rest (``ORDER BY``, ``TTL``, constraints, settings) is storage and stays
  local, a column's ``TTL`` too (it must close its column command; migration 0012). Drops reach
  the Distributed table first, additions after the local tables have them.
  Views get ``ON CLUSTER`` and keep reading the Distributed tables.
* A ``Null`` table (a landing shape that stores nothing, e.g. ``events_ingest``) is created
  ``ON CLUSTER`` as it is: on every node, its materialised view writes into the Distributed
  table, which shards the rows, so a writer may insert into it on any node.

Usage: ``python infra/clickhouse/gen_cluster_ddl.py [--check]`` (``--check`` fails when the
committed files are stale; the test suite runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from classtrace.migrate import Migration, load_migrations  # noqa: E402

OUT = Path(__file__).resolve().parent / "cluster"
CLUSTER = "'{cluster}'"
SHARDING_KEY = "cityHash64(school_id)"

_CREATE = re.compile(r"^CREATE TABLE IF NOT EXISTS \$\{db\}\.(\w+)\s*\(", re.S)
_ENGINE = re.compile(r"ENGINE\s*=\s*(\w*MergeTree)(\(([^)]*)\))?")
_ALTER = re.compile(r"^ALTER TABLE \$\{db\}\.(\w+)\s")
_VIEW = re.compile(r"^CREATE (OR REPLACE )?(MATERIALIZED )?VIEW (IF NOT EXISTS )?\$\{db\}\.(\w+)")
_NULL_ENGINE = re.compile(r"\nENGINE\s*=\s*Null\b")
_NON_REPLICATED = re.compile(r",?\s*non_replicated_deduplication_window\s*=\s*\d+")
_COLUMN_COMMAND = re.compile(r"^(ADD|MODIFY|DROP|RENAME|COMMENT)\s+COLUMN\b")
_DROP_COLUMN = re.compile(r"^DROP\s+COLUMN\b")
_COLUMN_TTL = re.compile(r"\s+TTL\s+[^'`\"]+$")  # after the last quote: not inside a COMMENT
_BARE_MODIFY = re.compile(r"^MODIFY\s+COLUMN\s+\S+$")  # a MODIFY that only set a TTL


def _engine(statement: str, table: str) -> str:
    match = _ENGINE.search(statement)
    if not match:
        raise ValueError(f"{table}: no MergeTree engine found")
    engine, args = match.group(1), (match.group(3) or "").strip()
    path = f"'/clickhouse/tables/{{shard}}/{{database}}/{table}_local', '{{replica}}'"
    replicated = f"ENGINE = Replicated{engine}({path}{', ' + args if args else ''})"
    return statement[: match.start()] + replicated + statement[match.end() :]


def _drop_dedup_window(statement: str) -> str:
    statement = _NON_REPLICATED.sub("", statement)
    # "SETTINGS" left with nothing after it (the window was the only setting)
    return re.sub(r"\n\s*SETTINGS\s*(?=\n|$|COMMENT)", "\n", statement)


_LEADING_COMMENTS = re.compile(r"^(\s*--[^\n]*\n)+")


def split_commands(commands: str) -> list[str]:
    """An ALTER's commands, split at the commas outside quotes and parentheses; comments dropped."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote, i = 0, "", 0
    while i < len(commands):
        char = commands[i]
        if not quote and commands.startswith("--", i):
            i = len(commands) if (end := commands.find("\n", i)) < 0 else end
            continue  # a comment may hold quotes and commas of its own
        if quote and char == "\\":
            current.append(commands[i : i + 2])  # an escaped character cannot close the quote
            i += 2
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char in "'`\"":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            i += 1
            continue
        current.append(char)
        i += 1
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _alter(table: str, commands: str) -> list[str]:
    """The local ALTER, and the Distributed table's share of its column commands."""
    local = f"ALTER TABLE ${{db}}.{table}_local ON CLUSTER {CLUSTER} {commands}"
    columns = [c for c in split_commands(commands) if _COLUMN_COMMAND.match(c)]
    drops = [c for c in columns if _DROP_COLUMN.match(c)]
    kept = (_COLUMN_TTL.sub("", c) for c in columns if not _DROP_COLUMN.match(c))
    others = [c for c in kept if not _BARE_MODIFY.match(c)]
    head = f"ALTER TABLE ${{db}}.{table} ON CLUSTER {CLUSTER} "
    before = [head + ",\n    ".join(drops)] if drops else []
    after = [head + ",\n    ".join(others)] if others else []
    return [*before, local, *after]


def convert(statement: str) -> list[str]:
    """The cluster statements for one single-node statement (may be none).

    Leading comments are dropped (the single-node file is the documented one).
    """
    statement = _LEADING_COMMENTS.sub("", statement).strip()
    if match := _CREATE.match(statement):
        table = match.group(1)
        if _NULL_ENGINE.search(statement):
            return [statement.replace(f"${{db}}.{table}", f"${{db}}.{table} ON CLUSTER {CLUSTER}", 1)]
        local = statement.replace(f"${{db}}.{table}", f"${{db}}.{table}_local ON CLUSTER {CLUSTER}", 1)
        local = _drop_dedup_window(_engine(local, table))
        distributed = (
            f"CREATE TABLE IF NOT EXISTS ${{db}}.{table} ON CLUSTER {CLUSTER} AS ${{db}}.{table}_local\n"
            f"ENGINE = Distributed({CLUSTER}, currentDatabase(), '{table}_local', {SHARDING_KEY})"
        )
        return [local, distributed]
    if match := _ALTER.match(statement):
        table = match.group(1)
        if "MODIFY SETTING non_replicated_deduplication_window" in statement:
            return []  # replicated tables deduplicate by default
        return _alter(table, statement[match.end() :])
    if match := _VIEW.match(statement):
        name = match.group(4)
        return [statement.replace(f"${{db}}.{name}", f"${{db}}.{name} ON CLUSTER {CLUSTER}", 1)]
    raise ValueError(f"no cluster rule for statement: {statement[:80]!r}")


def render(migration: Migration) -> str:
    """The cluster file of one migration (``${db}`` kept: applied by the same runner)."""
    header = (
        f"-- GENERATED by infra/clickhouse/gen_cluster_ddl.py from classtrace/migrations/"
        f"{migration.version:04d}_{migration.name}.sql — do not edit.\n"
        f"-- Cluster variant: Replicated*MergeTree local tables + Distributed tables (ON CLUSTER).\n"
    )
    statements = [
        s for stmt in migration.statements("__DB__") for s in convert(stmt.replace("`__DB__`", "${db}"))
    ]
    return header + "\n\n".join(s.rstrip(";") + ";" for s in statements) + "\n"


def generate() -> dict[str, str]:
    """File name → content of every cluster migration."""
    return {f"{m.version:04d}_{m.name}.sql": render(m) for m in load_migrations()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail when the committed files are stale")
    args = parser.parse_args(argv)
    files = generate()
    if args.check:
        stale = [n for n, text in files.items() if not (OUT / n).exists() or (OUT / n).read_text() != text]
        if stale:
            print(f"stale cluster DDL (run {Path(__file__).name}): {', '.join(stale)}", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text)
        print(OUT / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
