-- The sink's fast path into events: the validated EventBatch records go to ClickHouse as they
-- came from Kafka (FORMAT ProtobufList, schema from sinks/protobuf_events.py) and ClickHouse
-- parses them in C++, instead of the sink flattening every event into Python column lists and
-- clickhouse-connect re-encoding them (measured: ~30 µs/event of sink CPU down to ~8).
--
-- events_ingest has the shape of a classtrace.v1.Event as the Protobuf format reads it (nested
-- fields as <field>_<subfield>, enums as their numbers) and stores nothing (Null engine); the
-- view turns each block into events rows: the short enum names of classtrace.schema, the payload
-- columns of DESIGN §6. An insert deduplication token given to the events_ingest insert applies
-- to the rows the view writes into events (checked by tests/integration/test_sink_protobuf_path).
--
-- `kind` is derived, not read: the sink sends only events that passed validation, where each
-- payload has a field that cannot be 0 (lesson.phase, teaching.kind, trace.verb,
-- heartbeat.interval_s) and exactly one payload is set, so an event with none of those is an
-- observation. The enum tables below follow proto/classtrace/v1/events.proto (a test compares
-- them); a new enum value needs a migration that replaces this view. Columns whose names the
-- view reuses as aliases are read as i.<column>, so the alias never stands for the column.
CREATE TABLE IF NOT EXISTS ${db}.events_ingest
(
    event_id              String,
    school_id             String,
    classroom_id          String,
    device_id             String,
    lesson_id             String,
    occurred_at_seconds   Int64,
    occurred_at_nanos     Int32,
    received_at_seconds   Int64,
    received_at_nanos     Int32,
    seq                   UInt64,
    device_kind           UInt8,
    lesson_phase          UInt8,
    lesson_teacher_id     String,
    lesson_subject        String,
    lesson_grade          String,
    lesson_enrolled       UInt32,
    teaching_kind         UInt8,
    teaching_teacher_id   String,
    teaching_duration_ms  UInt32,
    teaching_confidence   Float32,
    observation_present   UInt32,
    observation_attentive UInt32,
    observation_counts    Nested(behavior UInt8, count UInt32),
    trace_student_id      String,
    trace_verb            UInt8,
    trace_item_id         String,
    trace_knowledge_points Array(String),
    trace_correct         Nullable(Bool),
    trace_score           Float32,
    trace_latency_ms      UInt32,
    trace_context         UInt8,
    heartbeat_battery_pct Float32,
    heartbeat_cpu_pct     Float32,
    heartbeat_spool_depth UInt64,
    heartbeat_firmware    String,
    heartbeat_interval_s  UInt32
)
ENGINE = Null
COMMENT 'Landing shape of validated classtrace.v1.Event protobufs (FORMAT ProtobufList); stores nothing, events_ingest_mv writes events';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.events_ingest_mv TO ${db}.events AS
SELECT
    toUUID(i.event_id) AS event_id,
    multiIf(i.lesson_phase != 0, 'lesson', i.teaching_kind != 0, 'teaching', trace_verb != 0, 'trace',
            heartbeat_interval_s != 0, 'heartbeat', 'observation') AS kind,
    school_id,
    classroom_id,
    device_id,
    lesson_id,
    fromUnixTimestamp64Milli(occurred_at_seconds * 1000 + intDiv(occurred_at_nanos, 1000000), 'UTC') AS occurred_at,
    -- stamped by the gateway; an event produced straight to Kafka is stamped on arrival here
    if(received_at_seconds = 0 AND received_at_nanos = 0, now64(3, 'UTC'),
       fromUnixTimestamp64Milli(received_at_seconds * 1000 + intDiv(received_at_nanos, 1000000), 'UTC')) AS received_at,
    seq,
    transform(i.device_kind, [1, 2, 3, 4, 5, 6],
              ['CAMERA', 'AUDIO', 'TABLET', 'WHITEBOARD', 'TEACHER_APP', 'GATEWAY_SIM'], '') AS device_kind,
    transform(i.lesson_phase, [1, 2], ['STARTED', 'ENDED'], '') AS lesson_phase,
    if(i.lesson_phase != 0, lesson_teacher_id, teaching_teacher_id) AS teacher_id,
    lesson_subject AS subject,
    lesson_grade AS grade,
    lesson_enrolled AS enrolled,
    transform(i.teaching_kind, [1, 2, 3, 4, 5, 6, 7, 8, 9],
              ['LECTURING', 'QUESTIONING', 'BOARD_WRITING', 'DEMONSTRATING', 'FEEDBACK', 'ROLL_CALL',
               'PATROLLING', 'GUIDING', 'LISTENING'], '') AS teaching_kind,
    teaching_duration_ms AS duration_ms,
    teaching_confidence AS confidence,
    observation_present AS present,
    observation_attentive AS attentive,
    mapFromArrays(
        arrayMap(b -> transform(b, [1, 2, 3, 4, 5, 6, 7, 8],
                                ['HAND_RAISING', 'READING', 'WRITING', 'LISTENING', 'HEAD_DOWN', 'USING_PHONE',
                                 'DISCUSSING', 'STANDING_ANSWER'], ''), observation_counts.behavior),
        observation_counts.count) AS behavior_counts,
    trace_student_id AS student_id,
    transform(trace_verb, [1, 2, 3, 4, 5, 6, 7],
              ['ANSWERED', 'SUBMITTED', 'VIEWED', 'ASKED', 'HAND_RAISED', 'STARTED', 'COMPLETED'], '') AS verb,
    trace_item_id AS item_id,
    trace_knowledge_points AS knowledge_points,
    trace_correct AS correct,
    trace_score AS score,
    trace_latency_ms AS latency_ms,
    transform(trace_context, [1, 2, 3, 4], ['IN_CLASS', 'HOMEWORK', 'QUIZ', 'TUTORING'], '') AS context,
    heartbeat_battery_pct AS battery_pct,
    heartbeat_cpu_pct AS cpu_pct,
    heartbeat_spool_depth AS spool_depth,
    heartbeat_firmware AS firmware,
    heartbeat_interval_s AS interval_s
FROM ${db}.events_ingest AS i;
