"""The SQLite spool: durability across reopen, FIFO batches, the capacity policy, the file lock."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from producers.errors import SpoolError, SpoolFull
from producers.spool import NewChunk, SQLiteSpool


def chunk(n: int, device: str = "d1", heartbeat: bool = False, classroom: str = "c1") -> NewChunk:
    return NewChunk(classroom, device, n, b"x" * n, heartbeat)


def test_append_batch_ack_survive_reopen(tmp_path):
    path = tmp_path / "s.db"
    with SQLiteSpool(path) as spool:
        spool.append([chunk(3), chunk(4, "d2")], {"d1": 3, "d2": 4})
        first = spool.batch(100)
        assert [c.n_events for c in first] == [3, 4]
        spool.ack([first[0].row_id])
        assert spool.depth == 4
    with SQLiteSpool(path) as spool:
        assert spool.depth == 4
        assert spool.last_seqs() == {"d1": 3, "d2": 4}
        assert [c.device_id for c in spool.batch(100)] == ["d2"]


def test_batch_limits_events_but_returns_at_least_one_chunk(tmp_path):
    with SQLiteSpool(tmp_path / "s.db") as spool:
        spool.append([chunk(5), chunk(5), chunk(5)], {})
        assert len(spool.batch(10)) == 2
        assert len(spool.batch(1)) == 1


def test_second_process_is_locked_out(tmp_path):
    with SQLiteSpool(tmp_path / "s.db"), pytest.raises(SpoolError, match="in use"):
        SQLiteSpool(tmp_path / "s.db")


def test_full_spool_drops_old_heartbeats_first(tmp_path):
    with SQLiteSpool(tmp_path / "s.db", capacity=10) as spool:
        spool.append([chunk(2, heartbeat=True), chunk(6)], {})
        spool.append([chunk(4)], {})  # needs 2 more: the heartbeat chunk goes
        stats = spool.stats()
        assert (stats.depth, stats.dropped_heartbeats, stats.refused_full) == (10, 2, 0)
        assert all(c.n_events in (6, 4) for c in spool.batch(100))


def test_full_spool_drops_new_heartbeats_and_refuses_data(tmp_path):
    with SQLiteSpool(tmp_path / "s.db", capacity=5) as spool:
        spool.append([chunk(5)], {"d1": 5})
        spool.append([chunk(1, heartbeat=True)], {})
        with pytest.raises(SpoolFull) as info:
            spool.append([chunk(1)], {"d1": 6})
        assert (info.value.depth, info.value.capacity, info.value.wanted) == (5, 5, 1)
        stats = spool.stats()
        assert (stats.depth, stats.dropped_heartbeats, stats.refused_full) == (5, 1, 1)
        assert spool.last_seqs() == {"d1": 5}  # the refused append stored nothing


def test_quarantine_keeps_chunk_out_of_the_queue(tmp_path):
    path = tmp_path / "s.db"
    with SQLiteSpool(path) as spool:
        spool.append([chunk(2), chunk(3)], {})
        spool.quarantine([spool.batch(1)[0].row_id], "HTTP 400: bad")
        assert spool.depth == 3
    with SQLiteSpool(path) as spool:
        assert spool.stats().quarantined == 2


def test_batch_reads_while_a_write_holds_the_connection(tmp_path):
    # The sender reads on a connection of its own: a batch never waits for an append's fsync.
    with SQLiteSpool(tmp_path / "s.db") as spool:
        spool.append([chunk(2)], {})
        read: list[list[int]] = []
        with spool._lock:  # as an append or ack does while it commits
            reader = threading.Thread(target=lambda: read.append([c.n_events for c in spool.batch(10)]))
            reader.start()
            reader.join(30)
        assert read == [[2]]


def test_acking_a_chunk_twice_counts_it_once(tmp_path):
    with SQLiteSpool(tmp_path / "s.db") as spool:
        spool.append([chunk(3), chunk(2)], {})
        first = spool.batch(10)[0].row_id
        spool.ack([first])
        spool.ack([first])
        assert spool.depth == 2


def test_payloads_are_stored_compressed_and_read_back_whole(tmp_path):
    path = tmp_path / "s.db"
    payload = b"\x0a\x24" + b"0b6f3c2e-5d1a-4c8e-9f4a-2f1e0c9b7a65" * 50
    with SQLiteSpool(path) as spool:
        spool.append([NewChunk("c1", "d1", 50, payload)], {"d1": 50})
        assert spool.batch(100)[0].payload == payload
    with sqlite3.connect(path) as db:
        stored, codec = db.execute("SELECT payload, codec FROM chunks").fetchone()
    assert codec == 1 and len(stored) < len(payload) / 4


def test_a_spool_written_before_compression_is_read_as_it_was(tmp_path):
    """A device upgraded with events still spooled sends them unchanged."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, classroom_id TEXT NOT NULL,"
            " device_id TEXT NOT NULL, n INTEGER NOT NULL, heartbeat INTEGER NOT NULL,"
            " payload BLOB NOT NULL);"
            "CREATE TABLE quarantine (id INTEGER PRIMARY KEY, classroom_id TEXT NOT NULL,"
            " device_id TEXT NOT NULL, n INTEGER NOT NULL, payload BLOB NOT NULL,"
            " reason TEXT NOT NULL, at REAL NOT NULL);"
            "INSERT INTO chunks (classroom_id, device_id, n, heartbeat, payload)"
            " VALUES ('c1', 'd1', 2, 0, X'0a00');"
        )
    with SQLiteSpool(path) as spool:
        spool.append([chunk(3)], {})
        assert [c.payload for c in spool.batch(100)] == [b"\x0a\x00", b"xxx"]
        spool.quarantine([spool.batch(1)[0].row_id], "HTTP 400: bad")
        assert spool.stats().quarantined == 2
