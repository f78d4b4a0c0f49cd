-- The metrics of one lesson (DESIGN §6, §7), re-emitted by the stream processor as the lesson
-- runs. ReplacingMergeTree(version): rows with the same key collapse to the highest version, so
-- `FROM lesson_summary FINAL` gives one row per lesson, the latest. The key leads with school_id
-- (fixed for a lesson) so per-school reads stay narrow; (school_id, lesson_id) identifies a lesson
-- exactly as lesson_id alone does.
CREATE TABLE IF NOT EXISTS ${db}.lesson_summary
(
    lesson_id          String                   COMMENT 'The lesson',
    school_id          LowCardinality(String)   COMMENT 'School of the lesson',
    classroom_id       LowCardinality(String)   COMMENT 'Classroom of the lesson',
    teacher_id         String                   COMMENT 'Teacher who opened the lesson',
    subject            LowCardinality(String)   COMMENT 'Subject, e.g. math',
    grade              LowCardinality(String)   COMMENT 'Grade, e.g. G7',
    started_at         DateTime64(3, 'UTC')     COMMENT 'Lesson start (event time of PHASE_STARTED)',
    ended_at           Nullable(DateTime64(3, 'UTC')) COMMENT 'Lesson end; NULL while the lesson runs',
    st_samples         UInt32                   COMMENT 'S-T analysis: number of 30 s samples N',
    st_rt              Float64                  COMMENT 'S-T analysis: teacher occupancy Rt = N_T / N',
    st_ch              Float64                  COMMENT 'S-T analysis: conversion ratio Ch = (runs - 1) / N',
    st_codes           String                   COMMENT 'S-T sample sequence, e.g. TTTSST',
    teaching_mode      LowCardinality(String)   COMMENT 'lecture | practice | dialogue | mixed (from st_rt, st_ch; DESIGN §7)',
    attention_rate     Nullable(Float64)        COMMENT 'Mean attentive / present over observations; NULL without observations',
    participation_rate Nullable(Float64)        COMMENT 'Distinct students with a trace / enrolled; NULL when enrolled = 0',
    answers            UInt32                   COMMENT 'First attempts per (student, item) of ANSWERED traces',
    answer_accuracy    Nullable(Float64)        COMMENT 'Correct first attempts / answers; NULL when answers = 0',
    hand_raises        UInt32                   COMMENT 'Number of HAND_RAISED traces',
    enrolled           UInt32                   COMMENT 'Students enrolled (from the lesson start event)',
    computed_at        DateTime64(3, 'UTC')     COMMENT 'When this version was computed (wall clock)',
    final              Bool                     COMMENT 'True once the lesson has ended: the values no longer change',
    version            UInt64                   COMMENT 'Increases with every re-emission of the lesson; the highest wins'
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(started_at)
ORDER BY (school_id, lesson_id)
COMMENT 'One row per lesson (latest version wins: read with FINAL): S-T analysis, attention, participation, answers.';

-- Time series of classroom metrics (e.g. attention_rate per 10 s tumbling window, hand_raising).
-- A window point re-emitted (late events, a restarted worker) has the same key and replaces the
-- earlier one on merge / FINAL instead of adding to it; the last inserted wins.
CREATE TABLE IF NOT EXISTS ${db}.metric_points
(
    window_start  DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)) COMMENT 'Window start (inclusive, event time)',
    window_end    DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)) COMMENT 'Window end (exclusive)',
    school_id     LowCardinality(String)   COMMENT 'School',
    classroom_id  LowCardinality(String)   COMMENT 'Classroom',
    lesson_id     String                   COMMENT 'Lesson running in the window; empty outside a lesson',
    metric        LowCardinality(String)   COMMENT 'Metric name, e.g. attention_rate, hand_raising',
    value         Float64                  COMMENT 'Value of the metric over the window'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (school_id, classroom_id, metric, window_start, lesson_id)
COMMENT 'Windowed classroom metrics; a re-emitted point replaces the earlier one (read with FINAL).';
