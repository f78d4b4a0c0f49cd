-- Dead letters without raw identifiers (issue 17, DESIGN §4 "Dead letters"). A dead letter now
-- keeps the broken rule's field path and a SHA-256 + length of the rejected bytes; `raw` stays
-- empty unless the operator sets CLASSTRACE_DEADLETTER_KEEP_RAW (then it holds the bytes, with any
-- non-pseudonym student_id already replaced, and wants the short retention of docs/DESIGN.md §4).
--
-- The key: 0003 kept two different bad bodies rejected in the same millisecond apart by
-- cityHash64(raw) in ORDER BY. With raw empty that hash is the same for every row, so the digest
-- joins the key. ClickHouse only lets a sorting key grow by columns added in the same ALTER, at
-- its end, hence one statement. Old rows get '' (their raw still tells them apart); new rows are
-- told apart by their digest. Re-running it is a no-op: the columns exist and the key is already
-- this one. (The cluster generator sends an ALTER to the local tables, hence the first clause
-- on the ALTER's line.)
ALTER TABLE ${db}.dead_letters ADD COLUMN IF NOT EXISTS field String COMMENT 'Dotted field path of the broken rule, e.g. trace.student_id; empty when not about a field',
    ADD COLUMN IF NOT EXISTS raw_sha256 String COMMENT 'Hex SHA-256 of the rejected bytes (student_id replaced first); empty on rows before 0009',
    ADD COLUMN IF NOT EXISTS raw_length UInt64 COMMENT 'Length in bytes of the rejected bytes',
    MODIFY ORDER BY (received_at, source, event_id, topic, partition, offset, cityHash64(raw), raw_sha256);

ALTER TABLE ${db}.dead_letters COMMENT COLUMN raw 'Empty unless CLASSTRACE_DEADLETTER_KEEP_RAW: the rejected event (student_id replaced) or record',
    COMMENT COLUMN error 'The broken rule or failure, never a text value of the rejected event',
    COMMENT COLUMN event_id 'event_id when it is a canonical UUID, else empty';
