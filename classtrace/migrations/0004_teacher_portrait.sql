-- Teacher digital portrait (教师数字画像) for analysts: per teacher per ISO week, over the lessons
-- that have ended (final rows of lesson_summary, latest version each). Weeks are cut in
-- Asia/Shanghai time, where the schools are: a Monday 07:30 lesson belongs to that Monday's week
-- (in UTC it would still be Sunday). avg() skips NULL rates, so a lesson without observations or
-- answers does not count as zero attention or accuracy.
CREATE OR REPLACE VIEW ${db}.teacher_portrait
AS SELECT
    teacher_id,
    toISOYear(toTimeZone(started_at, 'Asia/Shanghai'))                    AS iso_year,
    toISOWeek(toTimeZone(started_at, 'Asia/Shanghai'))                    AS iso_week,
    toMonday(toTimeZone(started_at, 'Asia/Shanghai'))                     AS week_start,
    groupUniqArray(school_id)                                             AS schools,
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
GROUP BY teacher_id, iso_year, iso_week, week_start
COMMENT 'Per teacher per ISO week (Asia/Shanghai): lessons, mean S-T Rt/Ch, teaching-mode mix, mean attention, participation and accuracy over ended lessons.';
