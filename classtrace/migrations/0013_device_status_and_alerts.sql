-- Device status and alerts (issue 18, docs/DESIGN.md §6): what the dashboard showed only live is
-- now stored. device_status holds one row per device state change (its first status, online →
-- offline, offline → online), written by the sink from the DeviceStatus entries of
-- classtrace.metrics.v1 the worker marked `changed`; a re-delivered record repeats the key and
-- collapses under FINAL. alerts holds the alerts the worker raises and clears on
-- classtrace.alerts.v1: one alert_id per raise (derived from kind, scope and raised_at), version 1
-- raised, 2 cleared, so under FINAL an alert shows its latest state. No student data in either.
-- Kept 180 days and 1 year; overrides: classtrace/retention.py (docs/RETENTION.md).
CREATE TABLE IF NOT EXISTS ${db}.device_status
(
    school_id       LowCardinality(String)  COMMENT 'School of the device',
    classroom_id    LowCardinality(String)  COMMENT 'Classroom of the device',
    device_id       String                  COMMENT 'Device id (unique within its school)',
    device_kind     LowCardinality(String)  COMMENT 'CAMERA, AUDIO, TABLET, WHITEBOARD, TEACHER_APP, GATEWAY_SIM',
    state           LowCardinality(String)  COMMENT 'online | offline: the state the device changed to',
    at              DateTime64(3, 'UTC')    COMMENT 'When: online = heartbeat received, offline = silence passed 3 × interval_s',
    last_heartbeat  DateTime64(3, 'UTC')    COMMENT 'occurred_at of the device''s latest heartbeat',
    interval_s      UInt32                  COMMENT 'Heartbeat interval the device announced',
    battery_pct     Float32                 COMMENT 'Battery at the latest heartbeat',
    spool_depth     UInt64                  COMMENT 'Events waiting in the device''s spool at the latest heartbeat'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (school_id, classroom_id, device_id, at, state)
TTL toDateTime(at) + toIntervalDay(180)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Device state changes (online/offline) from the worker''s heartbeat books; read with FINAL.';

CREATE TABLE IF NOT EXISTS ${db}.alerts
(
    alert_id      String                            COMMENT 'UUID derived from kind, scope and raised_at',
    kind          LowCardinality(String)            COMMENT 'device_offline | low_attention',
    state         LowCardinality(String)            COMMENT 'raised | cleared',
    school_id     LowCardinality(String)            COMMENT 'School of the classroom',
    classroom_id  LowCardinality(String)            COMMENT 'Classroom',
    lesson_id     String                            COMMENT 'low_attention: the lesson; empty otherwise',
    device_id     String                            COMMENT 'device_offline: the device; empty otherwise',
    raised_at     DateTime64(3, 'UTC')              COMMENT 'When the condition began',
    cleared_at    Nullable(DateTime64(3, 'UTC'))    COMMENT 'When it ended; NULL while raised',
    value         Float64                           COMMENT 'The value that raised or cleared it (attention rate; seconds silent)',
    threshold     Float64                           COMMENT 'What it was compared with',
    version       UInt64                            COMMENT '1 raised, 2 cleared: the highest wins'
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(raised_at)
ORDER BY (school_id, classroom_id, kind, raised_at, alert_id)
TTL toDateTime(raised_at) + toIntervalDay(365)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Alerts raised and cleared by the worker (classtrace.alerts.v1); read with FINAL.';
