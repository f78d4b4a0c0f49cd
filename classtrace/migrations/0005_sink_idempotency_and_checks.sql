-- Written for the ClickHouse sink (sinks/): insert deduplication and sanity checks.
--
-- The sink tags every insert with insert_deduplication_token = hash(table, Kafka offset ranges),
-- so a batch inserted again (a retry after a timeout whose insert had landed, or the same records
-- re-read after a crash between insert and commit) is dropped at insert time. On a plain
-- MergeTree that needs a deduplication window (replicated tables have one by default); events
-- got it in 0001, the other tables the sink writes get it here. FINAL still collapses whatever a
-- different token lets through.
ALTER TABLE ${db}.lesson_summary MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE ${db}.metric_points MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE ${db}.dead_letters MODIFY SETTING non_replicated_deduplication_window = 1000;

-- Values outside their definition (DESIGN §7) are a stream-processor bug. ClickHouse refuses
-- such a row; the sink then bisects its batch and sends just that row to dead_letters, so a
-- teacher portrait is never averaged over a 250 % attention rate.
ALTER TABLE ${db}.lesson_summary ADD CONSTRAINT IF NOT EXISTS st_rt_is_a_ratio CHECK st_rt BETWEEN 0 AND 1;
ALTER TABLE ${db}.lesson_summary ADD CONSTRAINT IF NOT EXISTS st_ch_is_a_ratio CHECK st_ch BETWEEN 0 AND 1;
ALTER TABLE ${db}.lesson_summary ADD CONSTRAINT IF NOT EXISTS rates_are_ratios
    CHECK (attention_rate IS NULL OR attention_rate BETWEEN 0 AND 1)
      -- participation may exceed 1 (more active students than the roster says): kept, not hidden
      AND (participation_rate IS NULL OR participation_rate >= 0)
      AND (answer_accuracy IS NULL OR answer_accuracy BETWEEN 0 AND 1);
ALTER TABLE ${db}.lesson_summary ADD CONSTRAINT IF NOT EXISTS known_teaching_mode
    CHECK teaching_mode IN ('lecture', 'practice', 'dialogue', 'mixed');
ALTER TABLE ${db}.metric_points ADD CONSTRAINT IF NOT EXISTS finite_value CHECK isFinite(value);
