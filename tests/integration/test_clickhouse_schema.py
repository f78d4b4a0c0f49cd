"""The ClickHouse schema of docs/DESIGN.md §6 on a real engine: migrations, tables, dedup, portrait view."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from classtrace.clickhouse import connect
from classtrace.errors import MigrationError
from classtrace.migrate import (
    Migration,
    applied_migrations,
    apply_migrations,
    load_migrations,
    quote_identifier,
)
from classtrace.schema import (
    DATABASE_TABLES,
    DATABASE_VIEWS,
    EVENT_COLUMNS,
    EVENT_INSERT_COLUMNS,
    TABLE_COLUMNS,
)
from tests.fixtures.clickhouse import random_database
from tests.helpers import clock

pytestmark = pytest.mark.integration

T0 = clock.YESTERDAY + timedelta(hours=2)
_DEFAULTS: dict[str, object] = {"String": "", "UUID": None, "Array(String)": [], "Nullable(Bool)": None}


def event_row(**values):
    """A full ``events`` row (EVENT_INSERT_COLUMNS order): a heartbeat unless told otherwise."""
    base = {
        "event_id": str(uuid.uuid4()),
        "kind": "heartbeat",
        "school_id": "s1",
        "classroom_id": "c1",
        "device_id": "cam-1",
        "occurred_at": T0,
        "received_at": T0 + timedelta(seconds=1),
        "seq": 1,
        "device_kind": "CAMERA",
        "behavior_counts": {},
        **values,
    }
    types = dict(EVENT_COLUMNS)
    row = []
    for name in EVENT_INSERT_COLUMNS:
        kind = types[name]
        default = _DEFAULTS.get(kind, "" if "String" in kind else 0)
        row.append(base.get(name, default))
    return row


def insert_events(db, rows, **settings):
    db.client.insert("events", rows, column_names=list(EVENT_INSERT_COLUMNS), settings=settings or None)


def tables(db):
    rows = db.client.query(
        "SELECT name, engine, sorting_key, partition_key, comment FROM system.tables"
        " WHERE database = {d:String}",
        parameters={"d": db.database},
    ).result_rows
    return {name: (engine, key, part, comment) for name, engine, key, part, comment in rows}


def columns(db, table):
    rows = db.client.query(
        "SELECT name, type, comment FROM system.columns WHERE database = {d:String} AND table = {t:String}",
        parameters={"d": db.database, "t": table},
    ).result_rows
    return {name: (kind, comment) for name, kind, comment in rows}


def test_migrations_run_twice_change_nothing(ch_db):
    before = tables(ch_db)
    assert apply_migrations(ch_db.client, ch_db.database) == []
    assert tables(ch_db) == before
    assert sorted(applied_migrations(ch_db.client, ch_db.database)) == [m.version for m in load_migrations()]


def test_every_migration_statement_can_be_rerun(ch_db):
    # A migration interrupted half-way is simply applied again: each statement is idempotent.
    for migration in load_migrations():
        for statement in migration.statements(ch_db.database):
            ch_db.client.command(statement, use_database=False)
    assert set(DATABASE_TABLES) <= set(tables(ch_db))


def test_a_fresh_database_gets_every_version_in_order(clickhouse):
    name = random_database()
    client = connect(clickhouse.url, database=name)
    try:
        assert apply_migrations(client, name) == [m.version for m in load_migrations()]
    finally:
        client.command(f"DROP DATABASE IF EXISTS {quote_identifier(name)}", use_database=False)
        client.close()


def test_edited_applied_migration_is_refused(ch_db):
    db = quote_identifier(ch_db.database)
    ch_db.client.command(f"TRUNCATE TABLE {db}.schema_migrations")
    ch_db.client.command(
        f"INSERT INTO {db}.schema_migrations (version, name, checksum) VALUES (1, 'events', 'x')"
    )
    with pytest.raises(MigrationError) as caught:
        apply_migrations(ch_db.client, ch_db.database)
    assert caught.value.version == 1 and "checksum" in str(caught.value)


def test_failing_migration_raises_with_version_and_code(ch_db, monkeypatch):
    broken = (*load_migrations(), Migration(99, "broken", "CREATE TABLE ${db}.nope (a UInt8 ENGINE = Nope"))
    monkeypatch.setattr("classtrace.migrate.load_migrations", lambda: broken)
    with pytest.raises(MigrationError) as caught:
        apply_migrations(ch_db.client, ch_db.database)
    assert caught.value.version == 99
    assert caught.value.code == 62  # SYNTAX_ERROR, from ClickHouse
    assert 99 not in applied_migrations(ch_db.client, ch_db.database)


def test_tables_and_columns_of_design_section_6(ch_db):
    found = tables(ch_db)
    assert set(DATABASE_TABLES) | set(DATABASE_VIEWS) <= set(found)
    for name in DATABASE_TABLES:
        engine, _key, part, comment = found[name]
        assert engine == "ReplacingMergeTree" and part.startswith("toYYYYMM(") and comment, name
    assert found["events"][1] == "school_id, classroom_id, occurred_at, event_id"
    assert found["teacher_portrait"][0] == "View" and found["teacher_portrait"][3]
    required = {
        "lesson_summary": "lesson_id school_id classroom_id teacher_id subject grade started_at ended_at "
        "st_samples st_rt st_ch st_codes teaching_mode attention_rate participation_rate answers "
        "answer_accuracy hand_raises enrolled computed_at final version",
        "metric_points": "window_start window_end school_id classroom_id lesson_id metric value",
        "dead_letters": "received_at source error raw event_id topic partition offset school_id",
        "teacher_portrait": "teacher_id iso_year iso_week lessons avg_st_rt avg_st_ch lecture_lessons "
        "practice_lessons dialogue_lessons mixed_lessons avg_attention avg_accuracy",
    }
    for table, names in required.items():
        cols = columns(ch_db, table)
        assert set(names.split()) <= set(cols), table
        if table != "teacher_portrait":
            assert all(comment for _kind, comment in cols.values()), f"{table}: every column has a COMMENT"
    events = columns(ch_db, "events")
    assert events["occurred_at"][0] == "DateTime64(3, 'UTC')"
    assert events["teaching_kind"][0] == "LowCardinality(String)"
    assert all(comment for _kind, comment in events.values())


@pytest.mark.parametrize("table", sorted(TABLE_COLUMNS))
def test_python_column_lists_match_describe(ch_db, table):
    described = ch_db.client.query(f"DESCRIBE TABLE {table}").result_rows
    assert tuple((row[0], row[1]) for row in described) == TABLE_COLUMNS[table]
    if table == "events":
        assert TABLE_COLUMNS[table] == EVENT_COLUMNS


def test_redelivered_events_collapse_with_final(ch_db):
    rows = [event_row(seq=i, occurred_at=T0 + timedelta(seconds=i)) for i in range(3)]
    insert_events(ch_db, rows)
    # Re-delivered later: same events, stamped again at ingest.
    again = [list(r) for r in rows[:2]]
    received = EVENT_INSERT_COLUMNS.index("received_at")
    for r in again:
        r[received] = T0 + timedelta(minutes=5)
    insert_events(ch_db, again)
    assert ch_db.count("events") == 5
    assert ch_db.count("events", final=True) == 3
    ch_db.client.command("OPTIMIZE TABLE events FINAL")
    assert ch_db.count("events") == 3


def test_same_deduplication_token_lands_once(ch_db):
    batch = [event_row(seq=i) for i in range(4)]
    insert_events(ch_db, batch, insert_deduplication_token="batch-7")
    insert_events(ch_db, batch, insert_deduplication_token="batch-7")
    assert ch_db.count("events") == 4
    insert_events(ch_db, [event_row(seq=9)], insert_deduplication_token="batch-8")
    assert ch_db.count("events") == 5


def test_payload_columns_round_trip(ch_db):
    row = event_row(
        kind="trace",
        device_kind="TABLET",
        lesson_id="L1",
        student_id="ps_" + "a" * 32,
        verb="ANSWERED",
        item_id="q1",
        knowledge_points=["kp.fractions", "kp.ratio"],
        correct=True,
        score=0.5,
        latency_ms=1200,
        context="IN_CLASS",
        behavior_counts={"HAND_RAISING": 3},
    )
    insert_events(ch_db, [row])
    got = ch_db.client.query(
        "SELECT kind, knowledge_points, correct, behavior_counts, present, ingested_at > occurred_at"
        " FROM events"
    ).result_rows
    assert got == [("trace", ["kp.fractions", "kp.ratio"], True, {"HAND_RAISING": 3}, 0, True)]


def summary_row(
    lesson_id, teacher, started, mode, st_rt, st_ch, attention, accuracy, *, final=True, version=2
):
    return {
        "lesson_id": lesson_id,
        "school_id": "s1",
        "classroom_id": "c1",
        "teacher_id": teacher,
        "subject": "math",
        "grade": "G7",
        "started_at": started,
        "ended_at": started + timedelta(minutes=40) if final else None,
        "st_samples": 80,
        "st_rt": st_rt,
        "st_ch": st_ch,
        "st_codes": "TS",
        "teaching_mode": mode,
        "attention_rate": attention,
        "participation_rate": 0.9,
        "answers": 10,
        "answer_accuracy": accuracy,
        "hand_raises": 2,
        "enrolled": 40,
        "computed_at": started + timedelta(minutes=41),
        "final": final,
        "version": version,
    }


def insert_summaries(db, summaries):
    names = list(summaries[0])
    db.client.insert("lesson_summary", [[s[n] for n in names] for s in summaries], column_names=names)


def test_lesson_summary_keeps_the_latest_version(ch_db):
    insert_summaries(ch_db, [summary_row("L1", "t1", T0, "lecture", 0.8, 0.1, 0.5, 0.5, version=5)])
    insert_summaries(ch_db, [summary_row("L1", "t1", T0, "mixed", 0.5, 0.2, 0.7, None, version=3)])
    got = ch_db.client.query("SELECT teaching_mode, version FROM lesson_summary FINAL").result_rows
    assert got == [("lecture", 5)]


def test_reemitted_metric_point_replaces(ch_db):
    names = ["window_start", "window_end", "school_id", "classroom_id", "lesson_id", "metric", "value"]
    point = [T0, T0 + timedelta(seconds=10), "s1", "c1", "L1", "attention_rate", 0.5]
    ch_db.client.insert("metric_points", [point], column_names=names)
    ch_db.client.insert("metric_points", [[*point[:-1], 0.75]], column_names=names)
    assert ch_db.client.query("SELECT value FROM metric_points FINAL").result_rows == [(0.75,)]


def test_teacher_portrait_from_hand_made_summaries(ch_db):
    monday = clock.MONDAY  # Mon 09:00 Asia/Shanghai
    next_monday = monday + timedelta(days=7)
    insert_summaries(
        ch_db,
        [
            summary_row("L1", "t1", monday, "lecture", 0.8, 0.10, 0.8, 0.5, version=1),  # superseded
            summary_row("L2", "t1", monday + timedelta(days=1), "practice", 0.2, 0.30, 0.6, None),
            summary_row("L3", "t1", monday + timedelta(days=2), "dialogue", 0.5, 0.50, None, 1.0),
            summary_row("L4", "t1", monday + timedelta(days=3), "lecture", 0.9, 0.05, 0.2, 0.2, final=False),
            # The next Monday 07:30 in Shanghai is still Sunday in UTC: it belongs to the next week.
            summary_row("L5", "t1", next_monday - timedelta(minutes=90), "mixed", 0.6, 0.2, 0.9, 0.9),
            summary_row("L6", "t2", monday, "lecture", 0.7, 0.1, 0.5, 0.5),
        ],
    )
    insert_summaries(ch_db, [summary_row("L1", "t1", monday, "lecture", 0.8, 0.10, 1.0, 0.5, version=2)])
    rows = ch_db.client.query(
        "SELECT teacher_id, iso_year, iso_week, week_start, lessons, avg_st_rt, avg_st_ch, lecture_lessons,"
        " practice_lessons, dialogue_lessons, mixed_lessons, avg_attention, avg_accuracy"
        " FROM teacher_portrait ORDER BY teacher_id, week_start"
    ).result_rows
    week, later = monday.isocalendar(), next_monday.isocalendar()
    first = rows[0]
    assert first[:5] == ("t1", week.year, week.week, monday.date(), 3)
    assert first[5] == pytest.approx((0.8 + 0.2 + 0.5) / 3)
    assert first[6] == pytest.approx((0.10 + 0.30 + 0.50) / 3)
    assert first[7:11] == (1, 1, 1, 0)
    assert first[11] == pytest.approx((1.0 + 0.6) / 2)  # NULL attention is skipped, not zero
    assert first[12] == pytest.approx((0.5 + 1.0) / 2)
    assert rows[1][:5] == ("t1", later.year, later.week, next_monday.date(), 1)
    assert rows[1][10] == 1
    assert rows[2][:5] == ("t2", week.year, week.week, monday.date(), 1)
    assert len(rows) == 3
