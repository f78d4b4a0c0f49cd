"""dead_letters in ClickHouse (chDB): a digest and a length per row, no raw bytes by default (issue 17)."""

from __future__ import annotations

import hashlib

from sinks.clickhouse_writer import ClickHouseWriter
from sinks.metrics import sink_metrics
from sinks.rows import add_dead_letter, new_block
from tests.helpers import clock

NOW_S = clock.NOW.timestamp()  # recent: dead_letters drops a row past its 30-day TTL at insert


def test_rows_carry_digest_and_length_and_two_bodies_in_one_ms_stay_two(ch_db):
    bodies = [b"\xff" * 11 + b"20230117 zhang", b"\xff" * 11 + b"20230118 li"]
    block = new_block("dead_letters")
    for body in bodies:  # same millisecond, same (empty) location: only the digest tells them apart
        add_dead_letter(block, NOW_S, "not an EventBatch", body, ("", -1, -1))
    writer = ClickHouseWriter(ch_db.client, ch_db.database, sink_metrics())
    assert writer.write(block, "dl-test") == []
    sql = "SELECT raw, raw_sha256, raw_length, field FROM {db}.dead_letters FINAL ORDER BY raw_length"
    rows = ch_db.client.query(sql.format(db=ch_db.database)).result_rows
    expected = sorted(((b"", hashlib.sha256(b).hexdigest(), len(b), "") for b in bodies), key=lambda r: r[2])
    assert [(r[0].encode() if isinstance(r[0], str) else r[0], r[1], r[2], r[3]) for r in rows] == expected
