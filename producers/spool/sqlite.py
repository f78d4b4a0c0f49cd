"""The SQLite spool: a WAL-mode database file on the device, bounded, one writer process.

Durability: every :meth:`SQLiteSpool.append` is one transaction, committed before
``send_events`` returns. In WAL mode ``synchronous=NORMAL`` survives a killed process (kill -9,
crash) but may lose the last commits on power loss; ``synchronous=FULL`` (the default here,
``durable=True``) fsyncs each commit and survives power loss too. A device that is sure of its
power can trade that for throughput with ``durable=False``.

Capacity policy (``capacity`` events, default 1,000,000), applied to each append that would
overflow:

1. the oldest heartbeat-only chunks are dropped to make room (a heartbeat is a status report;
   a newer one supersedes it) — counted in ``dropped_heartbeats``;
2. if that is not enough, an append of heartbeats only is dropped (counted the same way), and
   any other append is refused whole with :class:`~producers.errors.SpoolFull` — counted in
   ``refused_full``. Learning data is never dropped silently: the caller hears about it.

Payloads are stored LZ4-compressed (``codec`` 1; 0 is a raw payload, as spools written before
compression hold): an EventBatch of ids and enums shrinks ~2.4×, and on a device's flash or a VM
disk the bytes written per append cost more than compressing them (bench/ingest.py: the append
of a 100-event chunk fell from ~340 to ~200 µs with ``synchronous=NORMAL``). Chunks are
decompressed when read, so the Spool protocol sees EventBatch bytes only.

One process at a time: the spool takes an exclusive ``flock`` on ``<path>.lock``, released by
the OS when the process dies, so a restarted device reopens its spool at once. Within it, writes
go through one connection in turn, and the sender reads batches through a second one: a WAL
reader does not wait for the writer, so the next batch is read while an append fsyncs.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

import cramjam

from producers.errors import SpoolError, SpoolFull
from producers.spool.base import NewChunk, SpoolChunk, SpoolStats

__all__ = ["DEFAULT_CAPACITY", "SQLiteSpool", "spool_size_bytes"]

logger = logging.getLogger(__name__)

DEFAULT_CAPACITY = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    classroom_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    heartbeat INTEGER NOT NULL,
    payload BLOB NOT NULL,
    codec INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chunks_heartbeat ON chunks (heartbeat, id);
CREATE TABLE IF NOT EXISTS seqs (device_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    classroom_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    codec INTEGER NOT NULL DEFAULT 0
);
"""
RAW, LZ4 = 0, 1  # the codec column: how ``payload`` is stored


class SQLiteSpool:
    """A :class:`~producers.spool.base.Spool` in one SQLite file (WAL mode).

    >>> spool = SQLiteSpool(tmp_path / "edge.spool")   # doctest: +SKIP
    """

    def __init__(self, path: str | Path, capacity: int = DEFAULT_CAPACITY, durable: bool = True) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1 event")
        self.path = Path(path)
        self.capacity = capacity
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lockfile = self._take_lock()
        # Two connections. Writes (append, ack, quarantine) share one, in turn (``_lock``). The
        # sender reads chunks on its own (``_read_lock``): WAL readers never wait for a writer,
        # so reading the next batch overlaps an append's fsync instead of queueing behind it.
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        opened: list[sqlite3.Connection] = []
        try:
            db = _connect(self.path, opened)
            db.execute("PRAGMA journal_mode=WAL")
            self._sync = "FULL" if durable else "NORMAL"
            db.execute(f"PRAGMA synchronous={self._sync}")
            db.executescript(_SCHEMA)
            _add_codec_columns(db)
            self._depth = int(db.execute("SELECT COALESCE(SUM(n), 0) FROM chunks").fetchone()[0])
            self._quarantined = int(db.execute("SELECT COALESCE(SUM(n), 0) FROM quarantine").fetchone()[0])
            reader = _connect(self.path, opened)
            reader.execute("PRAGMA query_only=1")
        except sqlite3.Error as exc:
            for connection in opened:
                connection.close()
            self._release_lock()
            raise SpoolError(f"cannot open spool {self.path}: {exc}") from exc
        self._db, self._reader = db, reader
        self._refused_full = 0
        self._dropped_heartbeats = 0
        if self._depth:
            logger.info("spool reopened path=%s depth=%d", self.path, self._depth)

    # -- lifecycle ---------------------------------------------------------------------------------

    def _take_lock(self) -> IO[bytes]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = open(lock_path, "ab")  # noqa: SIM115 - held for the spool's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise SpoolError(f"spool {self.path} is in use by another process") from None
        return handle

    def _release_lock(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lockfile.fileno(), fcntl.LOCK_UN)
        self._lockfile.close()

    def close(self) -> None:
        """Checkpoint and close; chunks not acknowledged stay for the next open."""
        with self._read_lock, self._lock:
            if self._lockfile.closed:
                return
            self._reader.close()
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._release_lock()

    def __enter__(self) -> SQLiteSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the Spool protocol ------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Events waiting to be acknowledged."""
        return self._depth

    def last_seqs(self) -> dict[str, int]:
        """The last seq handed out per device."""
        with self._lock:
            return {d: int(s) for d, s in self._db.execute("SELECT device_id, seq FROM seqs")}

    def append(self, chunks: Sequence[NewChunk], seqs: Mapping[str, int]) -> None:
        """Store ``chunks`` and the new last ``seqs`` in one transaction (see the module policy)."""
        wanted = sum(c.n_events for c in chunks)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if self._depth + wanted > self.capacity and not self._make_room(chunks, wanted):
                        self._db.execute("ROLLBACK")
                        return
                    self._db.executemany(
                        "INSERT INTO chunks (classroom_id, device_id, n, heartbeat, payload, codec) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        [
                            (c.classroom_id, c.device_id, c.n_events, int(c.heartbeat_only), p, LZ4)
                            for c, p in zip(chunks, map(_compress, chunks), strict=True)
                        ],
                    )
                    if seqs:
                        self._db.executemany(
                            "INSERT INTO seqs (device_id, seq) VALUES (?, ?) "
                            "ON CONFLICT(device_id) DO UPDATE SET seq = excluded.seq",
                            list(seqs.items()),
                        )
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot append to spool {self.path}: {exc}") from exc
            self._depth += wanted

    def _make_room(self, chunks: Sequence[NewChunk], wanted: int) -> bool:
        """Apply the capacity policy inside the open transaction; False = drop the append."""
        need = self._depth + wanted - self.capacity
        victims: list[int] = []
        freed = 0
        for row_id, n in self._db.execute("SELECT id, n FROM chunks WHERE heartbeat = 1 ORDER BY id"):
            if freed >= need:
                break
            victims.append(row_id)
            freed += n
        if freed >= need:
            self._db.executemany("DELETE FROM chunks WHERE id = ?", [(v,) for v in victims])
            self._depth -= freed
            self._dropped_heartbeats += freed
            logger.warning("spool full: dropped old heartbeats events=%d path=%s", freed, self.path)
            return True
        if all(c.heartbeat_only for c in chunks):
            self._dropped_heartbeats += wanted
            logger.warning("spool full: dropped new heartbeats events=%d path=%s", wanted, self.path)
            return False
        self._refused_full += wanted
        raise SpoolFull(self._depth, self.capacity, wanted)

    def batch(self, max_events: int) -> list[SpoolChunk]:
        """The oldest chunks holding at most ``max_events`` events (at least one chunk)."""
        out: list[SpoolChunk] = []
        total = 0
        with self._read_lock:
            try:
                cursor = self._reader.execute(
                    "SELECT id, classroom_id, device_id, n, payload, codec FROM chunks ORDER BY id"
                )
                rows: list[tuple[int, str, str, int, bytes, int]] = []
                for row in cursor:
                    if rows and total + row[3] > max_events:
                        break
                    rows.append(row)
                    total += row[3]
                cursor.close()
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot read spool {self.path}: {exc}") from exc
        # decompressed outside the lock (cramjam releases the GIL)
        for row_id, classroom_id, device_id, n, payload, codec in rows:
            out.append(SpoolChunk(row_id, classroom_id, device_id, n, _payload(payload, codec, row_id)))
        return out

    def ack(self, row_ids: Iterable[int]) -> None:
        """Delete delivered chunks."""
        ids = [(r,) for r in row_ids]
        if not ids:
            return
        with self._lock:
            try:
                # A delete lost to power loss only re-sends the chunk (same event_ids, deduplicated
                # downstream): no fsync of its own. The next append's fsync persists it anyway.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
                # One statement; RETURNING counts only rows still there (a capacity drop may
                # have removed some since they were read).
                marks = ",".join("?" * len(ids))
                cursor = self._db.execute(
                    f"DELETE FROM chunks WHERE id IN ({marks}) RETURNING n", [r for (r,) in ids]
                )
                removed = sum(n for (n,) in cursor)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise SpoolError(f"cannot delete from spool {self.path}: {exc}") from exc
            finally:
                self._db.execute(f"PRAGMA synchronous={self._sync}")
            self._depth -= removed

    def _sum_n(self, ids: list[tuple[int]]) -> int:
        marks = ",".join("?" * len(ids))
        row = self._db.execute(
            f"SELECT COALESCE(SUM(n), 0) FROM chunks WHERE id IN ({marks})", [r for (r,) in ids]
        ).fetchone()
        return int(row[0])

    def quarantine(self, row_ids: Iterable[int], reason: str) -> None:
        """Move refused chunks to the quarantine table with ``reason``."""
        ids = [(r,) for r in row_ids]
        if not ids:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                moved = self._sum_n(ids)
                now = time.time()
                self._db.executemany(
                    "INSERT INTO quarantine (id, classroom_id, device_id, n, payload, codec, reason, at) "
                    "SELECT id, classroom_id, device_id, n, payload, codec, ?, ? FROM chunks WHERE id = ?",
                    [(reason, now, r) for (r,) in ids],
                )
                self._db.executemany("DELETE FROM chunks WHERE id = ?", ids)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise SpoolError(f"cannot quarantine in spool {self.path}: {exc}") from exc
            self._depth -= moved
            self._quarantined += moved
        logger.error("spool quarantined events=%d reason=%s path=%s", moved, reason, self.path)

    def stats(self) -> SpoolStats:
        """Depth, capacity and the policy counters."""
        return SpoolStats(
            depth=self._depth,
            capacity=self.capacity,
            refused_full=self._refused_full,
            dropped_heartbeats=self._dropped_heartbeats,
            quarantined=self._quarantined,
        )


def _add_codec_columns(db: sqlite3.Connection) -> None:
    """Spools written before compression lack ``codec``: their rows are raw (codec 0)."""
    for table in ("chunks", "quarantine"):
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if "codec" not in columns:
            db.execute(f"ALTER TABLE {table} ADD COLUMN codec INTEGER NOT NULL DEFAULT {RAW}")


def _compress(chunk: NewChunk) -> bytes:
    return bytes(cramjam.lz4.compress_block(chunk.payload))


def _payload(stored: bytes, codec: int, row_id: int) -> bytes:
    """The EventBatch bytes of a stored chunk."""
    if codec == RAW:
        return stored
    if codec == LZ4:
        return bytes(cramjam.lz4.decompress_block(stored))
    raise SpoolError(f"spool chunk {row_id} has unknown codec {codec}: written by a newer version?")


def _connect(path: Path, opened: list[sqlite3.Connection]) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
    opened.append(connection)
    return connection


def spool_size_bytes(path: Path) -> int:
    """Bytes on disk of a spool (database + WAL), for status pages."""
    return sum(p.stat().st_size for p in (path, Path(str(path) + "-wal")) if p.exists())
