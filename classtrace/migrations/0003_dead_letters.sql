-- Events and records that were rejected, with the precise reason and the raw bytes (DESIGN §1).
-- A dead letter travels as a classtrace.v1.DeadLetter record, so a re-delivered one repeats every
-- key column (received_at was stamped where it was rejected) and collapses under FINAL. The raw
-- bytes' hash is in the key so that two different bad bodies rejected in the same millisecond stay
-- two rows.
CREATE TABLE IF NOT EXISTS ${db}.dead_letters
(
    received_at  DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)) COMMENT 'When the event or record was rejected',
    source       LowCardinality(String)   COMMENT 'Who rejected it: gateway | sdk | worker | sink',
    error        String                   COMMENT 'Precise, human-readable reason',
    raw          String CODEC(ZSTD(3))    COMMENT 'The rejected event or record as received (binary bytes)',
    event_id     String                   COMMENT 'event_id when it could be read, else empty',
    topic        LowCardinality(String)   COMMENT 'Kafka topic a consumer found it on, else empty',
    partition    Int32                    COMMENT 'Kafka partition, -1 when not from Kafka',
    offset       Int64                    COMMENT 'Kafka offset, -1 when not from Kafka',
    school_id    LowCardinality(String)   COMMENT 'School when it could be read, else empty'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (received_at, source, event_id, topic, partition, offset, cityHash64(raw))
COMMENT 'Rejected events and records with the reason and the raw bytes; read with FINAL to drop re-deliveries.';
