-- The access log (issue 17, docs/DASHBOARD.md "Access log"): one row per dashboard, report or
-- query access — who (the registry's viewer id or the OS account, never a token), in which scope,
-- what, when, with what outcome, from where. Written by the sink from classtrace.access.v1, or
-- straight by a command that runs without a broker (classtrace.access.deliver). A query is kept
-- as the SHA-256 and length of its SQL, never its parameters. A re-delivered record repeats its
-- record_id and collapses under FINAL. school_id is the school whose data was asked for ('' when
-- not one school): it also shards the table on a cluster. Kept 1 year; overrides:
-- classtrace/retention.py (docs/RETENTION.md).
CREATE TABLE IF NOT EXISTS ${db}.access_log
(
    record_id  String                  COMMENT 'UUID chosen at the access (idempotency key)',
    at         DateTime64(3, 'UTC')    COMMENT 'When the access happened',
    viewer_id  String                  COMMENT 'Viewer id of the registry, os:<user> or --as name on the CLI; empty for an unknown token',
    scope      LowCardinality(String)  COMMENT 'The viewer''s school, or all',
    school_id  LowCardinality(String)  COMMENT 'School whose data was asked for; empty when not one school',
    action     LowCardinality(String)  COMMENT 'dashboard.snapshot|dashboard.detail|dashboard.stream|report.lesson|report.teacher|query',
    target     String                  COMMENT 'school/classroom, lesson or teacher id, or sha256=… length=… of a query',
    outcome    LowCardinality(String)  COMMENT 'allowed | denied | not_found',
    source     String                  COMMENT 'Client address, or cli:<user>@<host>'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (school_id, at, record_id)
TTL toDateTime(at) + toIntervalDay(365)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Who read what, when: dashboard, report and query accesses; read with FINAL.';
