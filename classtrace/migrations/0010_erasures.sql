-- The erasure audit (docs/ERASURE.md): one row per executed `classtrace erase` request, written by
-- the sink once the person's rows are gone. It proves what was removed and when, without the
-- identifier in clear: subject_sha256 is classtrace.erasure.subject_digest(kind, school, id).
-- A re-executed request (the sink restarted between the delete and this row) repeats the key
-- and collapses under FINAL. Kept 3 years, the longest any erased row could have lived
-- (lesson_summary); overrides: classtrace/retention.py (docs/RETENTION.md).
CREATE TABLE IF NOT EXISTS ${db}.erasures
(
    erasure_id      String                   COMMENT 'Id of the request (the ledger record)',
    kind            LowCardinality(String)   COMMENT 'student | teacher',
    school_id       LowCardinality(String)   COMMENT 'School of the person',
    subject_sha256  String                   COMMENT 'SHA-256 of kind, school and id: never the id itself',
    requested_at    DateTime64(3, 'UTC')     COMMENT 'When classtrace erase was run',
    executed_at     DateTime64(3, 'UTC')     COMMENT 'When the rows were removed',
    rows_deleted    UInt64                   COMMENT 'Rows deleted (a student''s events)',
    rows_blanked    UInt64                   COMMENT 'Rows whose id was blanked (a teacher''s lessons and events)',
    tables          Array(String)            COMMENT 'Tables the request touched'
)
ENGINE = ReplacingMergeTree(executed_at)
PARTITION BY toYYYYMM(requested_at)
ORDER BY (school_id, kind, subject_sha256, erasure_id)
TTL toDateTime(requested_at) + toIntervalDay(1095)
COMMENT 'Executed erasure requests: what was removed and when, by digest; read with FINAL.';
