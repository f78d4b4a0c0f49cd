-- Retention of the tables that store data (docs/RETENTION.md; the one home of the numbers and
-- their reasons is classtrace/retention.py, and tests/unit/test_retention.py checks that this
-- file sets its defaults). Most people in this data are children: a row is deleted once its
-- purpose is met, not kept "in case".
--
-- A row goes when its time column is `days` old: ClickHouse drops it at insert when it is already
-- past, and at the next merge after that otherwise (at the latest merge_with_ttl_timeout = 4 h
-- after it expires on a busy table; OPTIMIZE … FINAL forces it). With materialize_ttl_after_modify
-- (on by default) each ALTER also schedules a MATERIALIZE TTL mutation, so rows written before
-- this migration expire too. Row-level, not ttl_only_drop_parts: a month partition would otherwise
-- keep a row up to a month past its retention. toDateTime: a TTL needs Date or DateTime.
--
-- An operator's CLASSTRACE_RETENTION_<TABLE>_DAYS is applied after the migrations by
-- `classtrace migrate` and `classtrace up` (classtrace.migrate.apply_retention), not here.
ALTER TABLE ${db}.events MODIFY TTL toDateTime(occurred_at) + toIntervalDay(180);
ALTER TABLE ${db}.metric_points MODIFY TTL toDateTime(window_start) + toIntervalDay(180);
ALTER TABLE ${db}.lesson_summary MODIFY TTL toDateTime(started_at) + toIntervalDay(1095);
ALTER TABLE ${db}.dead_letters MODIFY TTL toDateTime(received_at) + toIntervalDay(30);
