-- One row per accepted event (DESIGN §6). Every payload field of classtrace.v1.Event is flattened
-- into a typed column; fields of the payloads an event does not carry keep their defaults
-- ('' / 0 / empty), and `kind` says which payload it was.
--
-- Idempotency: the whole ORDER BY is ReplacingMergeTree's dedup key. A re-delivered event repeats
-- every column of the key (same school, classroom, device clock and event_id), so `FINAL` (or a
-- background merge) collapses it: SELECT count() FROM events FINAL = distinct accepted event_ids.
-- School first in the key keeps one school's queries to a narrow range of each part.
-- non_replicated_deduplication_window lets insert_deduplication_token drop a retried batch at
-- insert time on a plain MergeTree, before any merge (replicated tables do this by default).
CREATE TABLE IF NOT EXISTS ${db}.events
(
    event_id         UUID                              COMMENT 'Producer-chosen UUID: the idempotency key end to end',
    kind             LowCardinality(String)            COMMENT 'Which payload the event carried: lesson | teaching | observation | trace | heartbeat',
    school_id        LowCardinality(String)            COMMENT 'School the device belongs to',
    classroom_id     LowCardinality(String)            COMMENT 'Classroom (also the Kafka key)',
    device_id        String                            COMMENT 'Emitting device',
    lesson_id        String                            COMMENT 'Lesson the event belongs to; empty outside a lesson',
    occurred_at      DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)) COMMENT 'Device clock (event time)',
    received_at      DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)) COMMENT 'Stamped at ingest (gateway or Kafka consumer)',
    seq              UInt64                            COMMENT 'Per-device increasing sequence number',
    device_kind      LowCardinality(String)            COMMENT 'DeviceKind without prefix: CAMERA, AUDIO, TABLET, WHITEBOARD, TEACHER_APP, GATEWAY_SIM',

    lesson_phase     LowCardinality(String)            COMMENT 'lesson: STARTED | ENDED',
    teacher_id       String                            COMMENT 'lesson / teaching: the teacher',
    subject          LowCardinality(String)            COMMENT 'lesson: subject, e.g. math',
    grade            LowCardinality(String)            COMMENT 'lesson: grade, e.g. G7',
    enrolled         UInt32                            COMMENT 'lesson: students enrolled (participation denominator)',

    teaching_kind    LowCardinality(String)            COMMENT 'teaching: behaviour kind, e.g. LECTURING (T set: LECTURING, QUESTIONING, BOARD_WRITING, DEMONSTRATING, FEEDBACK, ROLL_CALL)',
    duration_ms      UInt32                            COMMENT 'teaching: segment length; the segment is [occurred_at, occurred_at + duration_ms)',
    confidence       Float32                           COMMENT 'teaching: recogniser confidence in [0, 1]',

    present          UInt16                            COMMENT 'observation: students in frame (<= 500)',
    attentive        UInt16                            COMMENT 'observation: attentive students (<= present)',
    behavior_counts  Map(LowCardinality(String), UInt16) COMMENT 'observation: behaviour (e.g. HAND_RAISING) -> count',

    student_id       String                            COMMENT 'trace: pseudonym ps_ + 32 hex; never a raw student id',
    verb             LowCardinality(String)            COMMENT 'trace: ANSWERED, SUBMITTED, VIEWED, ASKED, HAND_RAISED, STARTED, COMPLETED',
    item_id          String                            COMMENT 'trace: question or resource id',
    knowledge_points Array(String)                     COMMENT 'trace: knowledge points of the item',
    correct          Nullable(Bool)                    COMMENT 'trace: NULL when the item is not graded',
    score            Float32                           COMMENT 'trace: score of the attempt',
    latency_ms       UInt32                            COMMENT 'trace: time the student took',
    context          LowCardinality(String)            COMMENT 'trace: IN_CLASS, HOMEWORK, QUIZ, TUTORING',

    battery_pct      Float32                           COMMENT 'heartbeat: battery level in percent',
    cpu_pct          Float32                           COMMENT 'heartbeat: CPU load in percent',
    spool_depth      UInt64                            COMMENT 'heartbeat: events waiting in the device spool',
    firmware         LowCardinality(String)            COMMENT 'heartbeat: firmware version',
    interval_s       UInt32                            COMMENT 'heartbeat: promised period; offline after 3 x interval_s of silence',

    ingested_at      DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC') CODEC(Delta, ZSTD(1)) COMMENT 'When the row reached ClickHouse (set by the server; measures end-to-end lag)',

    -- a lesson report reads one lesson_id across the whole table: skip granules that lack it
    INDEX idx_lesson lesson_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (school_id, classroom_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'One row per accepted classroom event (classtrace.v1.Event, payload flattened). Query with FINAL to collapse re-delivered events.';
