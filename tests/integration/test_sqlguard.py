"""The analyst SQL guard on real chDB: every bypass we know is refused, every documented query runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from clickhouse_connect.driver.binding import finalize_query
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classtrace.sqlguard import QueryRefused, check, check_setting

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

REFUSED = {
    "SELECT file('/etc/passwd')": "function file()",
    "select * from FILE('/etc/passwd', LineAsString)": "table function FILE()",
    "SELECT * FROM url('http://127.0.0.1:1/', CSV, 'a String')": "table function url()",
    "SELECT * FROM s3('http://127.0.0.1:1/b/k', CSV)": "table function s3()",
    "SELECT * FROM remote('127.0.0.1', system.one)": "table function remote()",
    "SELECT * FROM executable('x.sh', CSV, 'a String')": "table function executable()",
    "SELECT * FROM input('a String')": "table function input()",
    "SELECT * FROM numbers(3)": "table function numbers()",
    "DESCRIBE file('/etc/passwd')": "table function file()",
    "SELECT * FROM events WHERE school_id IN (SELECT * FROM file('/etc/passwd'))": "table function file()",
    "WITH x AS (SELECT file('/etc/passwd') AS f) SELECT * FROM x": "function file()",
    "SELECT arrayMap(p -> file(p), ['/etc/passwd'])": "function file()",
    "SELECT 1 UNION ALL SELECT length(file('/etc/passwd'))": "function file()",
    "SELECT dictGet('d', 'a', 1)": "function dictGet()",
    "SELECT sleep(3)": "function sleep()",
    "SELECT 1 INTO OUTFILE '/tmp/classtrace-guard-test'": "INTO OUTFILE",
    "SHOW TABLES INTO OUTFILE '/tmp/classtrace-guard-test'": "INTO OUTFILE",
    "EXPLAIN SELECT 1 INTO OUTFILE '/tmp/classtrace-guard-test'": "INTO OUTFILE",
    "SELECT 1 SETTINGS readonly = 0": "SETTINGS clause",
    "SELECT count() FROM events SETTINGS allow_ddl = 1": "SETTINGS clause",
    "EXPLAIN header = 1 SELECT 1": "SETTINGS clause",
    "SELECT 1; SELECT file('/etc/passwd')": "more than one statement",
    "SELECT 1; INSERT INTO events (event_id) VALUES ('x')": "more than one statement",
    "SELECT 1 /* ; */ ; DROP TABLE events": "more than one statement",
    "INSERT INTO events (event_id) VALUES ('x')": "INSERT statements",
    "/* /* */ SELECT 1 */ INSERT INTO events FORMAT CSV": "INSERT statements",
    "CREATE TABLE x (a String) ENGINE = File(LineAsString, '/etc/passwd')": "CREATE statements",
    "ATTACH TABLE x": "ATTACH statements",
    "DROP TABLE events": "DROP statements",
    "SYSTEM DROP DNS CACHE": "SYSTEM statements",
    "SET readonly = 0": "SET statements",
    "KILL QUERY WHERE 1": "KILL QUERY statements",
    "SHOW PROCESSLIST": "SHOW PROCESSLIST statements",
    "SELECT * FROM system.processes": "system.processes",
    "SELECT query FROM `system`.`query_log`": "system.query_log",
    "SELECT `a\nFunction x` FROM events": "escape sequence",
}


@pytest.fixture
def guard(ch_db):
    """check() through a clickhouse-connect client on the session's chDB, as `classtrace query` does."""

    def run(sql, params):
        return bytes(ch_db.client.raw_query(sql, parameters=dict(params) or None, fmt="TSVRaw")).decode()

    def guarded(sql, params=None):
        check(sql, run, params, ch_db.database)

    return guarded


@pytest.mark.parametrize(("sql", "named"), REFUSED.items(), ids=range(len(REFUSED)))
def test_bypasses_are_refused_with_a_precise_reason(guard, sql, named):
    with pytest.raises(QueryRefused, match=re.escape(named)):
        guard(sql)


def _sql_blocks(path):
    return re.findall(r"```sql\n(.*?)```", path.read_text(), re.DOTALL)


def _statements(block):
    # a doc block is one statement; a trailing comment after the ';' is allowed
    return [s for s in (part.strip() for part in block.split(";")) if s and not s.startswith("--")]


def test_the_analyst_examples_pass_and_run(guard, ch_db):
    examples = [s for block in _sql_blocks(ROOT / "docs" / "ANALYSTS.md") for s in _statements(block)]
    assert len(examples) >= 6
    for sql in (e.replace("classtrace.", f"{ch_db.database}.") for e in examples):
        guard(sql)
        ch_db.client.query(sql, settings={"readonly": "1"})  # and they run read-only


def test_the_reports_queries_pass(guard, ch_db):
    from readers.reports.data import load_lesson, load_teacher

    class Guarded:
        seen = 0

        def query(self, sql, parameters=None):
            guard(finalize_query(sql, parameters, ch_db.client.server_tz))
            Guarded.seen += 1
            return ch_db.client.query(sql, parameters=parameters)

    load_lesson(Guarded(), ch_db.database, "s001", "L-1")
    load_teacher(Guarded(), ch_db.database, "s001", "t-042")
    assert Guarded.seen >= 2


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count() FROM events FINAL WHERE school_id = {school:String}",
        "SELECT * FROM {table:Identifier} LIMIT 1",
        "SHOW TABLES",
        "DESCRIBE TABLE events",
        "EXISTS TABLE events",
        "EXPLAIN SELECT count() FROM events",
        "SELECT name FROM system.tables WHERE database = {school:String}",
        "SELECT format('{} {}', 'a', 'b'), 'a;b', 'file(1)'",
        "SELECT 1 -- ; SELECT file('/etc/passwd')",
        "(SELECT 1) UNION ALL (SELECT 2) FORMAT CSV",
    ],
)
def test_ordinary_reads_and_parameters_pass(guard, sql):
    guard(sql, {"school": "s001", "table": "events"})


def test_an_identifier_parameter_must_be_a_plain_name(guard):
    with pytest.raises(QueryRefused, match="plain"):
        guard("SELECT * FROM {t:Identifier}", {"t": "events`\n  Function file"})


def test_only_harmless_request_settings_are_accepted():
    check_setting("max_result_rows")
    for name in ("readonly", "allow_ddl", "max_execution_time", "format_schema", "output_format_schema"):
        with pytest.raises(QueryRefused, match=name):
            check_setting(name)


_DANGER = st.sampled_from(
    ["file('/etc/passwd')", "url('http://127.0.0.1:1/', CSV)", "remote('h', system.one)", "input('a String')",
     "executable('x', CSV, 'a String')", "s3('http://h/b', CSV)"]
)  # fmt: skip
_WRAP = st.sampled_from(
    [
        "SELECT * FROM {}",
        "SELECT * FROM events WHERE event_id IN (SELECT * FROM {})",
        "WITH q AS (SELECT * FROM {}) SELECT * FROM q",
        "SELECT * FROM (SELECT 1) AS a JOIN {} AS b ON 1",
        "DESCRIBE TABLE {}",
        "EXPLAIN SYNTAX SELECT * FROM {}",
        "SELECT 1 UNION ALL SELECT * FROM {}",
    ]
)


def _recase(draw_bools, text):
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(text, draw_bools, strict=False))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    _DANGER,
    _WRAP,
    st.lists(st.booleans(), min_size=80, max_size=80),
    st.sampled_from([" ", "\n", " /* x */ "]),
)
def test_table_functions_are_refused_however_they_are_written(guard, danger, wrap, flips, gap):
    name, _, args = danger.partition("(")
    sql = wrap.replace(" ", gap).format(_recase(flips, name) + "(" + args)
    with pytest.raises(QueryRefused):
        guard(sql)
