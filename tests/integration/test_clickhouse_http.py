"""The chDB ClickHouse-HTTP endpoint with stock clients, and `classtrace query` through it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from classtrace.chserver import ChdbHttpServer
from classtrace.clickhouse import close_quietly, connect, store_errors
from classtrace.errors import StoreError
from classtrace.migrate import apply_migrations, quote_identifier
from classtrace.schema import EVENT_INSERT_COLUMNS
from tests.fixtures.clickhouse import random_database
from tests.helpers import clock

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
T0 = clock.YESTERDAY + timedelta(hours=1)  # recent: past rows would be dropped by the tables' TTL


@pytest.fixture(scope="module")
def server(chdb_path):
    with ChdbHttpServer(chdb_path) as srv:
        yield srv


def stock_client(server, **options):
    return clickhouse_connect.get_client(
        host="127.0.0.1", port=server.port, username="classtrace", password=server.password, **options
    )


@pytest.fixture
def http_db(server):
    """A random database migrated through the endpoint, and a stock client defaulting to it."""
    name = random_database("http")
    client = stock_client(server)
    apply_migrations(client, name)
    client.database = name
    yield client
    client.command(f"DROP DATABASE IF EXISTS {quote_identifier(name)}", use_database=False)
    client.close()


def test_stock_client_queries_commands_and_inserts(http_db):
    client = http_db
    assert client.command("SELECT 21 * 2") == 42
    client.command("CREATE TABLE t (id UInt32, name String, tags Array(String), seen DateTime64(3, 'UTC'))"
                   " ENGINE = MergeTree ORDER BY id")  # fmt: skip
    summary = client.insert(
        "t", [[1, "a", ["x"], T0], [2, "b", [], T0]], column_names=["id", "name", "tags", "seen"]
    )
    assert summary.written_rows == 2
    columns = [[3, 4], ["c", "d"], [[], ["y", "z"]], [T0, T0]]
    client.insert("t", columns, column_names=["id", "name", "tags", "seen"], column_oriented=True)
    result = client.query(
        "SELECT id, name, tags, seen FROM t WHERE id >= {low:UInt32} ORDER BY id", parameters={"low": 2}
    )
    assert result.result_rows == [
        (2, "b", [], T0.replace(tzinfo=None)),
        (3, "c", [], T0.replace(tzinfo=None)),
        (4, "d", ["y", "z"], T0.replace(tzinfo=None)),
    ]
    assert client.raw_query("SELECT id FROM t ORDER BY id FORMAT CSV") == b"1\n2\n3\n4\n"
    assert client.command("SELECT count() FROM t WHERE id > 100") == 0


@pytest.mark.parametrize("compress", [True, False, "zstd", "gzip"])
def test_compressed_event_inserts_and_dedup_token(server, http_db, compress):
    client = stock_client(server, compress=compress, database=http_db.database)
    rows = [[str(uuid.uuid4()), "heartbeat", "s1", "c1", "d1", "", T0, T0, i, "CAMERA"] for i in range(100)]
    names = list(EVENT_INSERT_COLUMNS[:10])
    for _ in range(2):
        client.insert("events", rows, column_names=names, settings={"insert_deduplication_token": "b1"})
    assert client.command("SELECT count() FROM events") == 100
    client.insert("events", rows[:10], column_names=names)  # re-delivered under another token
    assert client.command("SELECT count() FROM events FINAL") == 100
    client.close()


def test_bad_sql_comes_back_as_a_clickhouse_error(server, http_db):
    with pytest.raises(DatabaseError) as caught:
        http_db.query("SELEC 1")
    assert caught.value.code == 62 and "Syntax error" in str(caught.value)
    with pytest.raises(DatabaseError) as caught:
        http_db.command("SELECT * FROM no_such_table")
    assert caught.value.code == 60
    ours = connect(server.url, database=http_db.database)
    with pytest.raises(StoreError) as wrapped, store_errors("query failed"):
        ours.command("DROP TABLE no_such_table")
    assert wrapped.value.code == 60 and server.password not in str(wrapped.value)
    close_quietly(ours)


def test_the_secret_is_required(server):
    with pytest.raises(DatabaseError) as caught:
        clickhouse_connect.get_client(host="127.0.0.1", port=server.port)
    assert caught.value.code == 194
    with pytest.raises(DatabaseError) as caught:
        clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username="x", password="guess")
    assert caught.value.code == 516
    base = f"http://127.0.0.1:{server.port}/"
    for headers, status in (({}, 401), ({"X-ClickHouse-Key": "guess"}, 403)):
        with pytest.raises(urllib.error.HTTPError) as http:
            urllib.request.urlopen(urllib.request.Request(base, b"SELECT 1", headers), timeout=10)
        assert http.value.code == status
    ok = urllib.request.Request(base, b"SELECT 1", {"X-ClickHouse-Key": server.password})
    assert urllib.request.urlopen(ok, timeout=10).read() == b"1\n"
    assert urllib.request.urlopen(base + "ping", timeout=10).read() == b"Ok.\n"


def test_binds_to_loopback_only(chdb_path):
    with pytest.raises(ValueError, match="loopback"):
        ChdbHttpServer(chdb_path, host="0.0.0.0")


def test_one_client_shared_by_threads(server):
    client = connect(server.url, database="system")

    def work(i):
        return [client.command(f"SELECT {i} + {j}") for j in range(5)]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(8)))
    assert results == [[i + j for j in range(5)] for i in range(8)]
    close_quietly(client)


# -- `classtrace query` against a data dir whose chDB another process owns -----------------------

OWNER = """
import os, sys
from pathlib import Path
from classtrace.chserver import ChdbHttpServer
from classtrace.clickhouse import CHDB_PATH_KEY, chdb_url, connect
from classtrace.migrate import apply_migrations
from classtrace.runtime import Runtime, clear_runtime, write_runtime

data_dir = Path(sys.argv[1])
path = (data_dir / "chdb").resolve()
client = connect(chdb_url(path))
apply_migrations(client)
client.command(
    "INSERT INTO classtrace.metric_points (window_start, window_end, school_id, classroom_id,"
    " lesson_id, metric, value) VALUES"
    " (now() - 3600, now() - 3590, 's1', 'c1', 'L1', 'attention_rate', 0.5),"
    " (now() - 3590, now() - 3580, 's1', 'c2', 'L2', 'attention_rate', 0.25)"
)
with ChdbHttpServer(client) as server:
    write_runtime(data_dir, Runtime(pid=os.getpid(), kafka_bootstrap="",
                  clickhouse_http_url=server.url, extra={CHDB_PATH_KEY: str(path)}))
    print("READY", flush=True)
    sys.stdin.read()  # serve until the test closes our stdin
clear_runtime(data_dir, os.getpid())
client.close()
"""
CLI = "import sys; from classtrace.cli import main; sys.exit(main())"


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("CLASSTRACE_")}


def classtrace(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-c", CLI, *args], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture
def owned_data_dir(tmp_path):
    """A data dir whose chDB is owned (and served) by another process, as under `classtrace up`."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path)], cwd=ROOT, env=clean_env(), text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert owner.stdin is not None and owner.stdout is not None and owner.stderr is not None
    stdin, stdout, stderr = owner.stdin, owner.stdout, owner.stderr
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(120)
    try:
        assert line and line[0].strip() == "READY", stderr.read() if owner.poll() is not None else "timeout"
        yield tmp_path
    finally:
        stdin.close()
        try:
            owner.wait(30)
        except subprocess.TimeoutExpired:
            owner.kill()
            owner.wait()


def test_query_cli_through_the_owning_process(owned_data_dir):
    sql = "SELECT classroom_id, value FROM metric_points FINAL ORDER BY classroom_id"
    table = classtrace("query", sql, "--data-dir", str(owned_data_dir))
    assert table.returncode == 0, table.stderr
    lines = [
        ln.split() for ln in table.stdout.splitlines() if ln.strip() and not set(ln.strip()) <= {"─", " "}
    ]
    assert lines == [["classroom_id", "value"], ["c1", "0.5"], ["c2", "0.25"]]

    csv = classtrace("query", sql, "--format", "csv", "--data-dir", str(owned_data_dir))
    assert csv.returncode == 0, csv.stderr
    assert csv.stdout.splitlines() == ['"classroom_id","value"', '"c1",0.5', '"c2",0.25']

    json_out = classtrace("query", sql, "--format", "json", "--data-dir", str(owned_data_dir))
    assert json_out.returncode == 0, json_out.stderr
    assert json_out.stdout.splitlines() == [
        '{"classroom_id":"c1","value":0.5}',
        '{"classroom_id":"c2","value":0.25}',
    ]

    bad = classtrace("query", "SELECT nope FROM metric_points", "--data-dir", str(owned_data_dir))
    assert bad.returncode == 2
    assert "Code: 47" in bad.stderr and "Traceback" not in bad.stderr

    # Values are bound, not pasted: a quote in the value stays part of the value.
    bound = "SELECT value FROM metric_points FINAL WHERE classroom_id = {room:String} FORMAT CSV"
    hit = classtrace("query", bound, "--param", "room=c2", "--data-dir", str(owned_data_dir))
    assert hit.returncode == 0, hit.stderr
    assert hit.stdout.split() == ["0.25"]
    hostile = classtrace("query", bound, "--param", "room=c2' OR '1'='1", "--data-dir", str(owned_data_dir))
    assert hostile.returncode == 0, hostile.stderr
    assert hostile.stdout.split() == []

    migrate = classtrace("migrate", "--data-dir", str(owned_data_dir))
    assert migrate.returncode == 0, migrate.stderr
    assert "already up to date" in migrate.stdout


def test_query_cli_binds_parameters_on_its_own_chdb(tmp_path):
    sql = "SELECT {n:UInt32} + 1 AS n, {s:String} AS s"
    got = classtrace("query", sql, "--param", "n=41", "--param", "s=a=b", "--format", "json",
                     "--data-dir", str(tmp_path))  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines() == ['{"n":42,"s":"a=b"}']
    twice = classtrace("query", sql, "--param", "n=1", "--param", "n=2", "--data-dir", str(tmp_path))
    assert twice.returncode == 2 and "given twice" in twice.stderr
    malformed = classtrace("query", sql, "--param", "n", "--data-dir", str(tmp_path))
    assert malformed.returncode == 2 and "NAME=VALUE" in malformed.stderr


def test_query_cli_on_a_fresh_data_dir_creates_the_schema(tmp_path):
    shown = classtrace("query", "SHOW TABLES FROM classtrace", "--format", "csv", "--data-dir", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    # minors' data: what classtrace wrote (chDB's files included) is its owner's alone
    written = list(tmp_path.rglob("*"))
    assert written
    exposed = [str(p) for p in written if not p.is_symlink() and p.stat().st_mode & 0o077]
    assert exposed == [], exposed[:10]
    assert set(shown.stdout.split()) >= {
        '"name"', '"events"', '"lesson_summary"', '"metric_points"', '"dead_letters"', '"teacher_portrait"',
    }  # fmt: skip


@pytest.mark.parametrize("compress", [True, False])
def test_protobuf_event_inserts_over_http(server, http_db, compress):
    # What a `classtrace sink` process (or any sink against a ClickHouse server) sends: the
    # inline schema travels as a URL setting, the EventBatch bytes as the body.
    from loadtests.traffic import BatchFactory, load_devices, template_events
    from sinks.clickhouse_writer import ClickHouseWriter
    from sinks.metrics import sink_metrics
    from sinks.protobuf_events import RawEvents

    client = stock_client(server, compress=compress, database=http_db.database)
    factory = BatchFactory(load_devices("0123abcd", 1)[0], template_events(), 100)
    raw = RawEvents()
    for offset in range(3):
        raw.add(factory.next_batch()[0], ("ev", 0, offset), 100)
    writer = ClickHouseWriter(client, http_db.database, sink_metrics())
    assert writer.write_events(raw, "pb-1") is None
    assert writer.write_events(raw, "pb-1") is None  # same token: dropped
    assert client.command("SELECT count() FROM events") == 300
    odd = "SELECT countIf(kind = '') + countIf(device_kind != 'GATEWAY_SIM') FROM events"
    assert client.command(odd) == 0
    client.close()
    # the inline schema was kept under the engine directory, not in the working directory
    assert list((Path(server.path) / "format_schemas").glob("inline_*.proto"))
    assert not Path("__cache__").exists()
