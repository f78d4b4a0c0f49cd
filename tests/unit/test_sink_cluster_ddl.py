"""The cluster DDL is generated from the migrations, complete, and committed up to date."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from classtrace.schema import DATABASE_TABLES

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "gen_cluster_ddl", ROOT / "infra/clickhouse/gen_cluster_ddl.py"
)
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)


def test_committed_cluster_ddl_is_up_to_date():
    assert gen.main(["--check"]) == 0, "run: .venv/bin/python infra/clickhouse/gen_cluster_ddl.py"


def test_every_table_is_replicated_and_distributed():
    text = "\n".join(gen.generate().values())
    for table in DATABASE_TABLES:
        assert re.search(rf"\$\{{db\}}\.{table}_local ON CLUSTER '\{{cluster\}}'", text), table
        assert (
            f"Distributed('{{cluster}}', currentDatabase(), '{table}_local', cityHash64(school_id))" in text
        )
    engines = re.findall(r"ENGINE = (\w+)", text)
    # Null: the events_ingest landing table, which stores nothing (its view writes events)
    allowed = ("Distributed", "Null")
    assert engines and all(e.startswith("Replicated") or e in allowed for e in engines), engines
    assert re.search(r"events_ingest_mv ON CLUSTER '\{cluster\}' TO \$\{db\}\.events AS", text)
    assert "non_replicated_deduplication_window" not in text
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/lesson_summary_local', "
        "'{replica}', version)" in text
    )


_ALTER = re.compile(r"^ALTER TABLE \$\{db\}\.(\w+) ON CLUSTER '\{cluster\}' (.*)$", re.S)
_COLUMN_COMMAND = re.compile(r"^(ADD|MODIFY|DROP|RENAME|COMMENT) COLUMN ")
_COLUMN_TTL = re.compile(r" TTL [^']+$")  # a column's TTL is storage: local only (0012's raw_kept)


def _alters() -> list[tuple[str, list[str]]]:
    """(target table, commands) of every generated ALTER; the migrations write one command a line."""
    alters = []
    for text in gen.generate().values():
        for statement in text.split(";\n"):
            body = "\n".join(x for x in statement.splitlines() if not x.startswith("--")).strip()
            if match := _ALTER.match(body.rstrip(";")):
                alters.append((match.group(1), [c.strip() for c in match.group(2).split(",\n")]))
    return alters


def test_every_column_change_of_a_local_table_reaches_its_distributed_table():
    """A column added to t_local only is missing through the Distributed t (0009's dead_letters)."""
    local: dict[str, list[str]] = {}
    distributed: dict[str, list[str]] = {}
    for table, commands in _alters():
        if table.endswith("_local"):
            columns = [_COLUMN_TTL.sub("", c) for c in commands if _COLUMN_COMMAND.match(c)]
            local.setdefault(table.removesuffix("_local"), []).extend(columns)
        else:
            assert all(_COLUMN_COMMAND.match(c) for c in commands), f"{table}: storage change on Distributed"
            distributed.setdefault(table, []).extend(commands)
    added = [c for c in local["dead_letters"] if c.startswith("ADD COLUMN IF NOT EXISTS raw_sha256 String")]
    assert added, "migration 0009 adds dead_letters.raw_sha256"
    assert not any(" TTL " in c.rsplit("'", 1)[-1] for c in distributed["dead_letters"])
    assert set(distributed) <= set(local)
    for table, columns in local.items():
        assert sorted(distributed.get(table, [])) == sorted(columns), table


def test_an_alter_reaches_the_distributed_table_in_a_safe_order():
    """Drops leave the Distributed table before the local ones; additions reach it after them."""
    column = "ADD COLUMN IF NOT EXISTS a Map(String, UInt8) COMMENT 'x, y''s (z'"  # no split inside
    statements = gen.convert(
        f"ALTER TABLE ${{db}}.t {column},\n    DROP COLUMN IF EXISTS b,\n    MODIFY ORDER BY (k, a),\n"
        "    MODIFY TTL toDateTime(k) + 1"
    )
    drop, local, add = statements
    assert drop == "ALTER TABLE ${db}.t ON CLUSTER '{cluster}' DROP COLUMN IF EXISTS b"
    assert local.startswith(f"ALTER TABLE ${{db}}.t_local ON CLUSTER '{{cluster}}' {column}")
    assert local.endswith("MODIFY TTL toDateTime(k) + 1")
    assert add == f"ALTER TABLE ${{db}}.t ON CLUSTER '{{cluster}}' {column}"
    assert gen.convert("ALTER TABLE ${db}.t MODIFY TTL toDateTime(k) + 1") == [
        "ALTER TABLE ${db}.t_local ON CLUSTER '{cluster}' MODIFY TTL toDateTime(k) + 1"
    ]


@pytest.mark.integration
def test_generated_statements_parse(ch_db):
    # Keeper is not there to create replicated tables, but the parser checks every statement.
    for text in gen.generate().values():
        for statement in re.split(r";\n", text):
            body = "\n".join(x for x in statement.splitlines() if not x.startswith("--")).strip().rstrip(";")
            if body:
                ch_db.client.command("EXPLAIN AST " + body.replace("${db}", ch_db.database))


@pytest.mark.integration
def test_grants_parse(ch_db):
    from classtrace.migrate import split_statements

    # grants.sql (role users) and schools.sql (school accounts, row policies): generated by
    # infra/clickhouse/roles.py
    text = "\n".join((ROOT / "infra/clickhouse" / f).read_text() for f in ("grants.sql", "schools.sql"))
    statements = split_statements(re.sub(r"\$\{[A-Z0-9_]+\}", "0" * 64, text))
    assert any("CREATE ROW POLICY" in s for s in statements)
    for statement in statements:
        body = "\n".join(x for x in statement.splitlines() if not x.strip().startswith("--"))
        ch_db.client.command("EXPLAIN AST " + body)
