"""Retention on a real engine and broker: rows past their table's retention are gone after a merge,
an operator's override reaches the table and the topic, and applying it again changes nothing."""

from __future__ import annotations

import json

import pytest

from classtrace.kafka import align_topic_configs
from classtrace.migrate import apply_retention, quote_identifier
from classtrace.retention import POLICY, Kind, table_ttls
from classtrace.topics import TopicSpec

pytestmark = pytest.mark.integration

# One row of each table with a retention at a given age; school_id tells the rows apart.
_ROWS = {
    "events": "INSERT INTO {t} (event_id, kind, school_id, classroom_id, device_id, occurred_at, "
    "received_at) SELECT generateUUIDv4(), 'heartbeat', '{school}', 'c1', 'd1', {ts}, {ts}",
    "metric_points": "INSERT INTO {t} (window_start, window_end, school_id, classroom_id, metric, value) "
    "SELECT {ts}, {ts} + INTERVAL 10 SECOND, '{school}', 'c1', 'events', 1",
    "lesson_summary": "INSERT INTO {t} (lesson_id, school_id, started_at, teaching_mode, computed_at, "
    "version) SELECT 'L1', '{school}', {ts}, 'practice', now64(3, 'UTC'), 1",
    "dead_letters": "INSERT INTO {t} (received_at, source, error, raw, school_id) "
    "SELECT {ts}, 'gateway', 'bad', '{school}', '{school}'",
    "erasures": "INSERT INTO {t} (erasure_id, kind, school_id, requested_at, executed_at) "
    "SELECT 'e1', 'student', '{school}', {ts}, {ts}",
    "access_log": "INSERT INTO {t} (record_id, at, viewer_id, scope, school_id, action, target, outcome) "
    "SELECT generateUUIDv4(), {ts}, 'v1', '{school}', '{school}', 'query', 't', 'allowed'",
    "device_status": "INSERT INTO {t} (school_id, classroom_id, device_id, state, at) "
    "SELECT '{school}', 'c1', 'd1', 'offline', {ts}",
    "alerts": "INSERT INTO {t} (alert_id, kind, state, school_id, classroom_id, raised_at, version) "
    "SELECT '{school}', 'device_offline', 'raised', '{school}', 'c1', {ts}, 1",
}


def _insert(ch_db, table: str, school: str, age_days: int) -> None:
    target = f"{quote_identifier(ch_db.database)}.{table}"
    ts = f"now64(3, 'UTC') - INTERVAL {age_days} DAY"
    ch_db.client.command(_ROWS[table].format(t=target, school=school, ts=ts))


def _schools(ch_db, table: str) -> list[str]:
    db = quote_identifier(ch_db.database)
    return sorted(ch_db.client.query(f"SELECT school_id FROM {db}.{table}").result_columns[0])


def _show_create(ch_db, table: str) -> str:
    return str(ch_db.client.command(f"SHOW CREATE TABLE {quote_identifier(ch_db.database)}.{table}"))


def _optimize(ch_db, table: str) -> None:
    ch_db.client.command(f"OPTIMIZE TABLE {quote_identifier(ch_db.database)}.{table} FINAL")


def test_migrations_give_every_table_its_default_retention(ch_db):
    assert apply_retention(ch_db.client, ch_db.database, {}) == {}, "0008 set the defaults already"
    for table, (column, days) in table_ttls().items():
        assert f"TTL toDateTime({column}) + toIntervalDay({days})" in _show_create(ch_db, table)


@pytest.mark.parametrize("table", sorted(table_ttls()))
def test_rows_past_retention_are_gone_after_optimize_final(ch_db, table):
    days = table_ttls()[table][1]
    # rows written before the table had its TTL (a database older than migration 0008)
    ch_db.client.command(f"ALTER TABLE {quote_identifier(ch_db.database)}.{table} REMOVE TTL")
    _insert(ch_db, table, "expired", days + 10)
    _insert(ch_db, table, "recent", 1)
    assert _schools(ch_db, table) == ["expired", "recent"]

    assert apply_retention(ch_db.client, ch_db.database, {}) == {table: days}
    _optimize(ch_db, table)
    assert _schools(ch_db, table) == ["recent"]

    # a row that arrives already past its retention never stays either
    _insert(ch_db, table, "late", days + 1)
    _optimize(ch_db, table)
    assert _schools(ch_db, table) == ["recent"]


def test_an_override_reaches_the_table_once_and_deletes_what_it_no_longer_allows(ch_db):
    _insert(ch_db, "events", "month_old", 30)
    _insert(ch_db, "events", "recent", 1)

    assert apply_retention(ch_db.client, ch_db.database, {"events": 14}) == {"events": 14}
    assert "TTL toDateTime(occurred_at) + toIntervalDay(14)" in _show_create(ch_db, "events")
    assert "toIntervalDay(30)" in _show_create(ch_db, "dead_letters"), "other tables keep their default"
    db = repr(ch_db.database)
    mutations = f"SELECT count() FROM system.mutations WHERE database = {db} AND table = 'events'"
    before = int(str(ch_db.client.command(mutations)))

    assert apply_retention(ch_db.client, ch_db.database, {"events": 14}) == {}, "a second run is a no-op"
    assert int(str(ch_db.client.command(mutations))) == before, "no second rewrite of the table"

    _optimize(ch_db, "events")
    assert _schools(ch_db, "events") == ["recent"]

    # dropping the override goes back to the default
    assert apply_retention(ch_db.client, ch_db.database, {}) == {"events": 180}


def test_every_table_in_a_migrated_database_has_a_retention_entry(ch_db):
    raw = ch_db.client.raw_query(
        f"SELECT name FROM system.tables WHERE database = {ch_db.database!r}", fmt="JSONEachRow"
    )
    names = {json.loads(line)["name"] for line in raw.splitlines() if line.strip()}
    assert names == {e.name for e in POLICY if e.kind is not Kind.TOPIC}


def test_a_configured_topic_retention_reaches_an_existing_topic_once(kafka, topic_factory):
    week, three_days = str(7 * 86_400_000), str(3 * 86_400_000)
    topic = topic_factory(config={"retention.ms": week})
    wanted = [TopicSpec(topic, {"retention.ms": three_days})]

    assert align_topic_configs(kafka.bootstrap, wanted) == {topic: {"retention.ms": three_days}}
    # the broker now reports three days: nothing left to change
    assert align_topic_configs(kafka.bootstrap, wanted) == {}
    assert align_topic_configs(kafka.bootstrap, [TopicSpec(topic, {"retention.ms": week})]) == {
        topic: {"retention.ms": week}
    }
