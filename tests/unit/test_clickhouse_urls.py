"""Which ClickHouse a process uses (URL/DSN resolution), and the SQL helpers around migrations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from classtrace.cli.query import returns_rows
from classtrace.clickhouse import CHDB_PATH_KEY, Target, chdb_url, resolve_target, store_errors, target_of
from classtrace.errors import StoreError
from classtrace.migrate import load_migrations, quote_identifier, split_statements
from classtrace.runtime import Runtime, write_runtime
from classtrace.settings import Settings


def settings(tmp_path: Path, url: str | None = None) -> Settings:
    return Settings.load({"data_dir": tmp_path, "clickhouse_url": url}, environ={})


def runtime(pid: int, url: str = "http://classtrace:s3cret@127.0.0.1:9999", **extra: str) -> Runtime:
    return Runtime(pid=pid, kafka_bootstrap="127.0.0.1:9092", clickhouse_http_url=url, extra=dict(extra))


def test_server_url_is_used_as_given(tmp_path):
    url = "https://reader:pw@ch.example.org:8443/analytics"
    write_runtime(tmp_path, runtime(os.getppid()))  # a running stack does not matter for a server
    assert resolve_target(settings(tmp_path, url)) == Target(url, "server")


def test_embedded_without_a_stack_opens_chdb_under_the_data_dir(tmp_path):
    target = resolve_target(settings(tmp_path))
    assert target == Target("chdb://" + str((tmp_path / "chdb").resolve()), "chdb")


def test_a_running_stack_of_another_process_is_used(tmp_path):
    write_runtime(tmp_path, runtime(os.getppid()))
    target = resolve_target(settings(tmp_path))
    assert target.kind == "stack" and target.url.endswith("@127.0.0.1:9999")
    assert target.redacted == "http://classtrace:***@127.0.0.1:9999"


def test_the_owner_itself_opens_chdb(tmp_path):
    write_runtime(tmp_path, runtime(os.getpid()))
    assert resolve_target(settings(tmp_path)).kind == "chdb"


def test_a_stale_runtime_file_is_ignored(tmp_path):
    write_runtime(tmp_path, runtime(2**22 + 12345))  # beyond pid_max: never alive
    assert resolve_target(settings(tmp_path)).kind == "chdb"


def test_a_stack_serving_another_chdb_directory_is_not_used(tmp_path):
    write_runtime(tmp_path, runtime(os.getppid(), **{CHDB_PATH_KEY: "/elsewhere/chdb"}))
    assert resolve_target(settings(tmp_path)).kind == "chdb"
    write_runtime(tmp_path, runtime(os.getppid(), **{CHDB_PATH_KEY: str((tmp_path / "chdb").resolve())}))
    assert resolve_target(settings(tmp_path)).kind == "stack"


def test_explicit_chdb_url_is_honoured(tmp_path):
    other = tmp_path / "store"
    target = resolve_target(settings(tmp_path, f"chdb://{other}"))
    assert target == Target(chdb_url(other), "chdb") and target.url == f"chdb://{other.resolve()}"


def test_target_of_urls():
    assert target_of("chdb:///var/lib/ct").kind == "chdb"
    assert target_of("http://h:8123").kind == "server"
    with pytest.raises(StoreError, match="unsupported"):
        target_of("ftp://user:pw@h/x")


def test_store_errors_keep_the_code_and_drop_the_driver_preamble():
    with pytest.raises(StoreError) as caught, store_errors("query failed"):
        raise DatabaseError(
            "Received ClickHouse exception, code: 60, server response: Code: 60. DB::Exception: "
            "Table x.y does not exist. (UNKNOWN_TABLE) (for url http://h:8123)",
            code=60,
        )
    assert caught.value.code == 60
    assert (
        str(caught.value)
        == "query failed: Code: 60. DB::Exception: Table x.y does not exist. (UNKNOWN_TABLE)"
    )
    with pytest.raises(StoreError) as locked, store_errors("cannot connect"):
        raise OperationalError(
            "Unable to open: Code: 76. Cannot lock file /d/status. Another server instance"
        )
    assert "another process owns this chDB directory" in str(locked.value)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
        (
            "-- a; comment\nCREATE TABLE t (a String COMMENT 'x; y');\n/* ; */",
            ["-- a; comment\nCREATE TABLE t (a String COMMENT 'x; y')"],
        ),
        ("SELECT 'it\\'s; fine', `we;ird`", ["SELECT 'it\\'s; fine', `we;ird`"]),
        ("  -- only a comment\n", []),
    ],
)
def test_split_statements(sql, expected):
    assert split_statements(sql) == expected


def test_shipped_migrations_are_numbered_and_parametrised():
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    for migration in migrations:
        assert "${db}" in migration.sql and len(migration.checksum) == 64
        assert all("`x-y`." in s for s in migration.statements("x-y") if "CREATE" in s)


def test_quote_identifier():
    assert quote_identifier("classtrace") == "`classtrace`"
    assert quote_identifier("a`b") == "`a\\`b`"
    with pytest.raises(StoreError):
        quote_identifier("")


@pytest.mark.parametrize(
    ("sql", "rows"),
    [
        ("SELECT 1", True),
        ("  -- comment\n with x AS (SELECT 1) SELECT * FROM x", True),
        ("(SELECT 1)", True),
        ("show tables", True),
        ("DESCRIBE TABLE events", True),
        ("CREATE TABLE t (a UInt8) ENGINE = Memory", False),
        ("INSERT INTO t VALUES (1)", False),
        ("OPTIMIZE TABLE events FINAL", False),
    ],
)
def test_returns_rows(sql, rows):
    assert returns_rows(sql) is rows
