"""The ClickHouse table contract in Python: names and types of the columns writers fill (docs/DESIGN.md §6).

The migrations in ``classtrace/migrations/`` create the tables; this module lists what a writer
(the sink's event → row flattening) needs without parsing SQL. A test compares
:data:`TABLE_COLUMNS` with ``DESCRIBE TABLE`` of each table, so the two cannot drift apart.

Conventions of the ``events`` row: enums are stored as their short name without the proto prefix
(``LECTURING``, not ``KIND_LECTURING``; ``CAMERA``, not ``DEVICE_KIND_CAMERA``); fields of the
payloads an event does not carry keep their defaults ('' / 0 / empty map or array), and only
``correct`` is Nullable (unset = not graded). ``kind`` is the name of the ``payload`` oneof field
(:data:`EVENT_KINDS`). Timestamps are UTC ``DateTime64(3)``.
"""

from __future__ import annotations

__all__ = [
    "ALERT_COLUMNS",
    "DATABASE_TABLES",
    "DATABASE_VIEWS",
    "DEAD_LETTER_COLUMNS",
    "DEVICE_STATUS_COLUMNS",
    "EVENT_COLUMNS",
    "EVENT_COLUMN_NAMES",
    "EVENT_INSERT_COLUMNS",
    "EVENT_KINDS",
    "EVENT_SERVER_COLUMNS",
    "LESSON_SUMMARY_COLUMNS",
    "METRIC_POINT_COLUMNS",
    "TABLE_COLUMNS",
]

_TS = "DateTime64(3, 'UTC')"
_LC = "LowCardinality(String)"

EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "UUID"),
    ("kind", _LC),
    ("school_id", _LC),
    ("classroom_id", _LC),
    ("device_id", "String"),
    ("lesson_id", "String"),
    ("occurred_at", _TS),
    ("received_at", _TS),
    ("seq", "UInt64"),
    ("device_kind", _LC),
    # lesson (LessonLifecycle)
    ("lesson_phase", _LC),
    ("teacher_id", "String"),  # also TeachingBehavior.teacher_id
    ("subject", _LC),
    ("grade", _LC),
    ("enrolled", "UInt32"),
    # teaching (TeachingBehavior)
    ("teaching_kind", _LC),
    ("duration_ms", "UInt32"),
    ("confidence", "Float32"),
    # observation (ClassObservation)
    ("present", "UInt16"),
    ("attentive", "UInt16"),
    ("behavior_counts", "Map(LowCardinality(String), UInt16)"),
    # trace (LearningTrace)
    ("student_id", "String"),
    ("verb", _LC),
    ("item_id", "String"),
    ("knowledge_points", "Array(String)"),
    ("correct", "Nullable(Bool)"),
    ("score", "Float32"),
    ("latency_ms", "UInt32"),
    ("context", _LC),
    # heartbeat (DeviceHeartbeat)
    ("battery_pct", "Float32"),
    ("cpu_pct", "Float32"),
    ("spool_depth", "UInt64"),
    ("firmware", _LC),
    ("interval_s", "UInt32"),
    # filled by ClickHouse (DEFAULT now64): when the row landed
    ("ingested_at", _TS),
)
"""Every column of ``events``, in table order, with its ClickHouse type."""

EVENT_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in EVENT_COLUMNS)

EVENT_SERVER_COLUMNS: frozenset[str] = frozenset({"ingested_at"})
"""Columns ClickHouse fills itself; writers leave them out."""

EVENT_INSERT_COLUMNS: tuple[str, ...] = tuple(n for n in EVENT_COLUMN_NAMES if n not in EVENT_SERVER_COLUMNS)
"""The column names a writer passes to ``client.insert("events", rows, column_names=...)``."""

EVENT_KINDS: tuple[str, ...] = ("lesson", "teaching", "observation", "trace", "heartbeat")
"""Values of ``events.kind``: the ``payload`` oneof field names of ``classtrace.v1.Event``."""

LESSON_SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("lesson_id", "String"),
    ("school_id", _LC),
    ("classroom_id", _LC),
    ("teacher_id", "String"),
    ("subject", _LC),
    ("grade", _LC),
    ("started_at", _TS),
    ("ended_at", f"Nullable({_TS})"),  # NULL while the lesson runs
    ("st_samples", "UInt32"),
    ("st_rt", "Float64"),
    ("st_ch", "Float64"),
    ("st_codes", "String"),
    ("teaching_mode", _LC),
    ("attention_rate", "Nullable(Float64)"),  # NULL without observations
    ("participation_rate", "Nullable(Float64)"),  # NULL when enrolled = 0
    ("answers", "UInt32"),
    ("answer_accuracy", "Nullable(Float64)"),  # NULL when answers = 0
    ("hand_raises", "UInt32"),
    ("enrolled", "UInt32"),
    ("computed_at", _TS),
    ("final", "Bool"),
    ("version", "UInt64"),  # ReplacingMergeTree version: the highest per lesson wins
)
"""Every column of ``lesson_summary`` (one row per lesson, latest ``version`` wins)."""

METRIC_POINT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("window_start", _TS),
    ("window_end", _TS),
    ("school_id", _LC),
    ("classroom_id", _LC),
    ("lesson_id", "String"),
    ("metric", _LC),
    ("value", "Float64"),
)
"""Every column of ``metric_points`` (a re-emitted window point replaces the earlier one)."""

DEAD_LETTER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("received_at", _TS),
    ("source", _LC),
    ("error", "String"),
    ("raw", "String"),  # empty since 0012 (a key column, no TTL); older rows: kept bytes (0009)
    ("event_id", "String"),
    ("topic", _LC),
    ("partition", "Int32"),  # -1 when not from Kafka
    ("offset", "Int64"),  # -1 when not from Kafka
    ("school_id", _LC),
    ("field", "String"),  # 0009: the broken rule's field path
    ("raw_sha256", "String"),  # 0009: hex SHA-256 of the rejected bytes
    ("raw_length", "UInt64"),  # 0009
    ("raw_kept", "String"),  # 0012: bytes only with CLASSTRACE_DEADLETTER_KEEP_RAW, 7-day column TTL
)
"""Every column of ``dead_letters``."""

DEVICE_STATUS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("school_id", _LC),
    ("classroom_id", _LC),
    ("device_id", "String"),
    ("device_kind", _LC),
    ("state", _LC),  # online | offline
    ("at", _TS),
    ("last_heartbeat", _TS),
    ("interval_s", "UInt32"),
    ("battery_pct", "Float32"),
    ("spool_depth", "UInt64"),
)
"""Every column of ``device_status`` (0013): one row per device state change."""

ALERT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("alert_id", "String"),
    ("kind", _LC),  # device_offline | low_attention
    ("state", _LC),  # raised | cleared
    ("school_id", _LC),
    ("classroom_id", _LC),
    ("lesson_id", "String"),
    ("device_id", "String"),
    ("raised_at", _TS),
    ("cleared_at", f"Nullable({_TS})"),  # NULL while raised
    ("value", "Float64"),
    ("threshold", "Float64"),
    ("version", "UInt64"),  # 1 raised, 2 cleared
)
"""Every column of ``alerts`` (0013): an alert's latest state wins under FINAL."""

TABLE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "events": EVENT_COLUMNS,
    "lesson_summary": LESSON_SUMMARY_COLUMNS,
    "metric_points": METRIC_POINT_COLUMNS,
    "dead_letters": DEAD_LETTER_COLUMNS,
    "device_status": DEVICE_STATUS_COLUMNS,
    "alerts": ALERT_COLUMNS,
}
"""Column names and types of each table of docs/DESIGN.md §6, in table order (checked against DESCRIBE)."""

DATABASE_TABLES: tuple[str, ...] = tuple(TABLE_COLUMNS)
"""The tables of docs/DESIGN.md §6 (besides ``schema_migrations``)."""

DATABASE_VIEWS: tuple[str, ...] = ("teacher_portrait",)
"""The analyst views of docs/DESIGN.md §6."""
