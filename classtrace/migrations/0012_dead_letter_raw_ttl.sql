-- Kept dead-letter bytes get their own short retention (issue 17, docs/RETENTION.md): with
-- CLASSTRACE_DEADLETTER_KEEP_RAW on, the rejected bytes are emptied 7 days after received_at while
-- the row (reason, field, digest, length) stays the 30 days of dead_letters.
--
-- Why a new column: `raw` is in the sorting key (cityHash64(raw), 0003), and ClickHouse refuses a
-- TTL on a key column ("Trying to set TTL for key column raw"); a key can neither drop it. So the
-- sink writes kept bytes to raw_kept and leaves `raw` empty from this release on (cityHash64('')
-- is the same for every new row; raw_sha256 keeps them apart, 0009). Rows written before keep
-- whatever `raw` they hold until the row itself expires (at most 30 days).
--
-- A column TTL empties the value (to '') at the first merge after it expires, like a row TTL;
-- OPTIMIZE … FINAL forces it. Its TTL clause closes the column command: the cluster generator
-- keeps it on the local tables only (a Distributed table takes no TTL).
ALTER TABLE ${db}.dead_letters ADD COLUMN IF NOT EXISTS raw_kept String CODEC(ZSTD(3)) COMMENT 'Only with CLASSTRACE_DEADLETTER_KEEP_RAW: the rejected event (student_id replaced) or record, emptied 7 days after received_at' TTL toDateTime(received_at) + toIntervalDay(7);

ALTER TABLE ${db}.dead_letters COMMENT COLUMN raw 'Empty on rows since 0012 (kept bytes are in raw_kept); older rows: the bytes kept under CLASSTRACE_DEADLETTER_KEEP_RAW';
