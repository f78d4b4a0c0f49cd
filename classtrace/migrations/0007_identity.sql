-- A teacher is (school_id, teacher_id) (DESIGN.md, Identity): teacher ids are issued by each
-- school and repeat across schools, so 0004's portrait, grouped by teacher_id alone, merged two
-- schools' "t-01" into one teacher. The portrait is now one row per school, teacher and ISO week,
-- with school_id as a column in place of 0004's `schools` array. Everything else as in 0004:
-- ended lessons only (final rows, latest version), weeks cut in Asia/Shanghai time, avg() skips
-- NULL rates so a lesson without observations or answers does not count as zero.
CREATE OR REPLACE VIEW ${db}.teacher_portrait
AS SELECT
    school_id,
    teacher_id,
    toISOYear(toTimeZone(started_at, 'Asia/Shanghai'))                    AS iso_year,
    toISOWeek(toTimeZone(started_at, 'Asia/Shanghai'))                    AS iso_week,
    toMonday(toTimeZone(started_at, 'Asia/Shanghai'))                     AS week_start,
    count()                                                               AS lessons,
    avg(st_rt)                                                            AS avg_st_rt,
    avg(st_ch)                                                            AS avg_st_ch,
    countIf(teaching_mode = 'lecture')                                    AS lecture_lessons,
    countIf(teaching_mode = 'practice')                                   AS practice_lessons,
    countIf(teaching_mode = 'dialogue')                                   AS dialogue_lessons,
    countIf(teaching_mode = 'mixed')                                      AS mixed_lessons,
    avg(attention_rate)                                                   AS avg_attention,
    avg(participation_rate)                                               AS avg_participation,
    avg(answer_accuracy)                                                  AS avg_accuracy,
    sum(answers)                                                          AS total_answers,
    sum(hand_raises)                                                      AS total_hand_raises
FROM ${db}.lesson_summary FINAL
WHERE `final`
GROUP BY school_id, teacher_id, iso_year, iso_week, week_start
COMMENT 'Per school, teacher and ISO week (Asia/Shanghai): lessons, mean S-T Rt/Ch, teaching-mode mix, mean attention, participation and accuracy over ended lessons.';
