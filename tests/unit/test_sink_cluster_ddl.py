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

    sql = re.sub(r"\$\{[A-Z0-9_]+\}", "0" * 64, (ROOT / "infra/clickhouse/grants.sql").read_text())
    statements = split_statements(sql)
    assert any("CREATE ROW POLICY" in s for s in statements)
    for statement in statements:
        body = "\n".join(x for x in statement.splitlines() if not x.strip().startswith("--"))
        ch_db.client.command("EXPLAIN AST " + body)
