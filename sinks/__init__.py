"""The ClickHouse sink: batched, idempotent inserts of events, metrics and dead letters."""
