"""The access log (issue 17): one record per dashboard, report or query access — who, which scope,
what, when, with what outcome, from where.

A record names its viewer by the viewer registry's id (``v_…``, ``admin``) or, on the command
line, by the OS account (``os:<user>``, or the ``--as`` name it claims): never by a token. A
query's target is the SHA-256 and length of its SQL text, never its bound parameters, which may
hold a student's pseudonym. The readers publish records to ``classtrace.access.v1``
(:class:`AccessLog`, non-blocking: a request never waits for its log), the sink writes them to
the ``access_log`` table (migration 0011) with :meth:`AccessRecord.row`, the one place a stored
value is computed; the table keeps them a year (docs/RETENTION.md).

>>> r = AccessRecord.new("v_1", "s1", "dashboard.detail", "s1/C101", "allowed", "10.0.0.7", at_ms=0)
>>> AccessRecord.decode(r.encode()) == r
True
>>> query_target("SELECT 1")
'sha256=e004ebd5b5532a4b85984a62f8ad48a81aa3460c1ca07701f386135d72cdecf5 length=8'
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import orjson

from classtrace.errors import DecodeError
from classtrace.kafka import Producer, make_producer
from classtrace.topics import ACCESS

__all__ = [
    "ACCESS_LOG_COLUMNS",
    "ACCESS_LOG_TYPES",
    "ACTIONS",
    "ALL_SCHOOLS",
    "OUTCOMES",
    "AccessLog",
    "AccessRecord",
    "AccessRecorder",
    "cli_identity",
    "deliver",
    "query_target",
]

logger = logging.getLogger(__name__)

ACTIONS = (
    "dashboard.snapshot",
    "dashboard.detail",
    "dashboard.stream",
    "report.lesson",
    "report.teacher",
    "query",
)
OUTCOMES = ("allowed", "denied", "not_found")
"""``denied``: no valid token, or a school viewer asking for another school (it is answered 404 like
an unknown room, but the log says what it was); ``not_found``: nothing of that name in scope."""
ALL_SCHOOLS = "all"
"""The scope of an all-schools viewer and of the command line (which reads every school)."""
ACCESS_LOG_TYPES: dict[str, str] = {
    "record_id": "String", "at": "DateTime64(3, 'UTC')", "viewer_id": "String", "scope": "String",
    "school_id": "String", "action": "String", "target": "String", "outcome": "String", "source": "String",
}  # fmt: skip
"""Insert columns of ``access_log`` and their types (as clickhouse-connect writes them; migration 0011
has the LowCardinality ones), in :meth:`AccessRecord.row` order."""
ACCESS_LOG_COLUMNS = tuple(ACCESS_LOG_TYPES)
_VERSION = 1


@dataclass(frozen=True)
class AccessRecord:
    """One access: the value of a ``classtrace.access.v1`` record and one ``access_log`` row."""

    record_id: str
    """UUID chosen at the access: a re-delivered record collapses under ``FINAL``."""
    at_ms: int
    viewer_id: str
    """Registry viewer id, ``os:<user>`` / an ``--as`` name on the CLI, ``""`` for an unknown token."""
    scope: str
    """The viewer's school, or :data:`ALL_SCHOOLS`."""
    school_id: str
    """The school whose data was asked for, ``""`` when not one (an all-schools snapshot, SQL)."""
    action: str
    target: str
    """``school/classroom``, the lesson or teacher id, :func:`query_target`, or ``""``."""
    outcome: str
    source: str
    """Client address (HTTP), ``cli:<user>@<host>`` (command line)."""

    @classmethod
    def new(
        cls,
        viewer_id: str,
        scope: str | None,
        action: str,
        target: str,
        outcome: str,
        source: str,
        *,
        school_id: str = "",
        at_ms: int | None = None,
    ) -> AccessRecord:
        """A record of an access now; ``scope`` None means all schools (``""``: no viewer known)."""
        if action not in ACTIONS or outcome not in OUTCOMES:
            raise ValueError(f"unknown access action or outcome: {action!r}, {outcome!r}")
        at = time.time_ns() // 1_000_000 if at_ms is None else at_ms
        scope = ALL_SCHOOLS if scope is None else scope
        return cls(str(uuid.uuid4()), at, viewer_id, scope, school_id, action, target, outcome, source)

    def encode(self) -> bytes:
        """The record value (JSON, versioned)."""
        return orjson.dumps({"v": _VERSION, **asdict(self)})

    @classmethod
    def decode(cls, raw: bytes) -> AccessRecord:
        """Inverse of :meth:`encode`; :class:`DecodeError` (keeping the bytes) for anything else."""
        try:
            obj = orjson.loads(raw)
            if obj["v"] != _VERSION:
                raise ValueError(f"unknown access record version {obj['v']!r}")
            record = cls(**{name: obj[name] for name in cls.__dataclass_fields__})
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DecodeError(f"not an access record: {exc} ({len(raw)} bytes)", raw=bytes(raw)) from exc
        texts = (v for k, v in asdict(record).items() if k != "at_ms")
        if (
            type(record.at_ms) is not int
            or not all(isinstance(v, str) for v in texts)
            or (record.action not in ACTIONS or record.outcome not in OUTCOMES)
        ):
            raise DecodeError(f"not an access record: a field of the wrong kind ({len(raw)} bytes)", raw=raw)
        return record

    def row(self) -> tuple[Any, ...]:
        """The ``access_log`` row, in :data:`ACCESS_LOG_COLUMNS` order (``at`` as epoch ms)."""
        return (self.record_id, self.at_ms, self.viewer_id, self.scope, self.school_id, self.action,
                self.target, self.outcome, self.source)  # fmt: skip


def query_target(sql: str) -> str:
    """A query's target: SHA-256 and byte length of its UTF-8 text, never the text or its values.

    The digest lets an auditor match a query someone shows them; the parameters stay out because
    a bound value may be a pseudonym.
    """
    data = sql.encode()
    return f"sha256={hashlib.sha256(data).hexdigest()} length={len(data)}"


def cli_identity(claimed: str | None = None) -> tuple[str, str]:
    """``(viewer_id, source)`` of a command-line access.

    The OS account is who ran it (``os:<user>``); ``--as`` names the person it was run for (an
    analyst's own name on a shared account) and is a claim, so the source always keeps the account
    and host it came from.
    """
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = "unknown"
    source = f"cli:{user}@{socket.gethostname()}"
    return (claimed.strip() if claimed and claimed.strip() else f"os:{user}"), source


class AccessRecorder(Protocol):
    """What a reader logs accesses through (:class:`AccessLog`, or a list in unit tests)."""

    def record(self, record: AccessRecord) -> None: ...


class AccessLog:
    """Publishes access records without ever blocking the request that made them.

    ``record`` hands the record to librdkafka's queue and returns (a few µs); delivery happens on
    librdkafka's threads. A full queue or a failed delivery drops the record with a warning and
    counts it in :attr:`dropped`: the log must not take the dashboard down with it.
    """

    def __init__(self, bootstrap: str, options: Mapping[str, str] | None = None, topic: str = ACCESS) -> None:
        self.topic = topic
        self.dropped = 0
        self._producer: Producer | None = make_producer(bootstrap, options)

    def record(self, record: AccessRecord) -> None:
        """Queue ``record`` for the topic (key = viewer id: one viewer's records stay in order)."""
        producer = self._producer
        if producer is None:
            return
        try:
            key = record.viewer_id.encode()
            producer.produce(self.topic, record.encode(), key=key, on_delivery=self._done)
        except BufferError:
            self._drop("queue full")
        producer.poll(0)

    def _done(self, err: object, _msg: object) -> None:
        if err is not None:
            self._drop(str(err))

    def _drop(self, why: str) -> None:
        self.dropped += 1
        logger.warning("access record dropped topic=%s dropped=%d reason=%s", self.topic, self.dropped, why)

    def close(self, timeout: float = 5.0) -> int:
        """Deliver what is queued (up to ``timeout`` s); returns how many records were left undelivered."""
        producer, self._producer = self._producer, None
        if producer is None:
            return 0
        left = int(producer.flush(timeout))
        if left:
            self._drop(f"{left} not delivered at close")
        return left


def deliver(
    records: Sequence[AccessRecord],
    *,
    bootstrap: str | None,
    options: Mapping[str, str] | None = None,
    topic: str = ACCESS,
    client: Any = None,
    timeout: float = 10.0,
) -> str:
    """Log a command's accesses before it exits; returns where they went (``kafka``, ``table``).

    To the topic when a broker is known (the sink writes them, as the dashboard's), else straight
    into ``access_log`` through ``client`` (the embedded chDB a command opened itself: no sink
    runs there). Raises :class:`classtrace.errors.ClasstraceError` (or the client's error) when
    neither worked, for the caller to report.
    """
    from classtrace.errors import ClasstraceError

    if bootstrap:
        log = AccessLog(bootstrap, options, topic)
        for record in records:
            log.record(record)
        if log.close(timeout) == 0 and log.dropped == 0:
            return "kafka"
        raise ClasstraceError(f"access log not acknowledged by {bootstrap!r} within {timeout:g} s")
    if client is None:
        raise ClasstraceError("no broker and no ClickHouse client to write the access log to")
    insert_rows(client, records)
    return "table"


def insert_rows(client: Any, records: Iterable[AccessRecord], table: str = "access_log") -> None:
    """Insert ``records`` into ``access_log`` of the client's database (no broker: embedded CLI)."""
    rows = [list(r.row()) for r in records]
    if rows:
        client.insert(table, rows, column_names=list(ACCESS_LOG_COLUMNS))
