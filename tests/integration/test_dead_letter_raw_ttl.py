"""Kept dead-letter bytes expire after 7 days while the row stays its 30 (chDB, migration 0012)."""

from __future__ import annotations

import hashlib

import pytest

from classtrace.migrate import apply_retention, quote_identifier
from sinks.clickhouse_writer import ClickHouseWriter
from sinks.metrics import sink_metrics
from sinks.rows import add_dead_letter, new_block
from tests.helpers import clock

pytestmark = pytest.mark.integration

DAY_S = 86_400.0
RAW_TTL = "TTL toDateTime(received_at) + toIntervalDay(7)"


def _write_kept(ch_db, bodies_by_age: dict[int, bytes]) -> None:
    block = new_block("dead_letters")
    for age_days, body in bodies_by_age.items():
        now_s = clock.NOW.timestamp() - age_days * DAY_S
        add_dead_letter(block, now_s, "not an EventBatch", body, ("", -1, -1), keep_raw=True)
    assert ClickHouseWriter(ch_db.client, ch_db.database, sink_metrics()).write(block, "dl-ttl") == []


def _rows(ch_db) -> dict[str, bytes]:
    """raw_sha256 → raw_kept (read as hex: the bytes need not be UTF-8)."""
    sql = f"SELECT raw_sha256, hex(raw_kept) FROM {quote_identifier(ch_db.database)}.dead_letters FINAL"
    return {digest: bytes.fromhex(kept) for digest, kept in ch_db.client.query(sql).result_rows}


def test_kept_bytes_are_emptied_after_7_days_and_the_row_stays(ch_db):
    old, recent = b"\xff ten days old", b"\xff one day old"
    _write_kept(ch_db, {10: old, 1: recent})
    ch_db.client.command(f"OPTIMIZE TABLE {quote_identifier(ch_db.database)}.dead_letters FINAL")
    rows = _rows(ch_db)
    assert rows == {hashlib.sha256(old).hexdigest(): b"", hashlib.sha256(recent).hexdigest(): recent}


def test_a_row_retention_override_leaves_the_raw_ttl_in_place(ch_db):
    assert apply_retention(ch_db.client, ch_db.database, {"dead_letters": 20}) == {"dead_letters": 20}
    create = str(ch_db.client.command(f"SHOW CREATE TABLE {quote_identifier(ch_db.database)}.dead_letters"))
    assert RAW_TTL in create and "TTL toDateTime(received_at) + toIntervalDay(20)" in create
