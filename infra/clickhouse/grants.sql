-- Users, roles, grants and row policies of a production ClickHouse (idempotent). Run as an admin
-- after the migrations, with the password hashes substituted from the deploy's secrets:
--   envsubst < grants.sql | clickhouse-client --multiquery
-- (each hash: printf %s "$PASSWORD" | sha256sum). Profiles live in users.d/classtrace.xml and
-- config.d/custom_settings.xml allows the SQL_ setting of the school accounts.
-- On a cluster add ON CLUSTER '{cluster}' after each name and grant on the *_local tables too
-- (a Distributed table reads them as the querying user).

-- Migrations: DDL on the classtrace database only.
CREATE ROLE IF NOT EXISTS classtrace_migrator_role;
GRANT CREATE DATABASE, CREATE TABLE, CREATE VIEW, ALTER, DROP VIEW, INSERT, SELECT ON classtrace.* TO classtrace_migrator_role;
CREATE USER IF NOT EXISTS classtrace_migrator IDENTIFIED WITH sha256_hash BY '${CLASSTRACE_CH_MIGRATOR_SHA256}';
GRANT classtrace_migrator_role TO classtrace_migrator;

-- The sink writes the four tables (events through events_ingest) and the erasures audit, and
-- carries out erasures; nothing else (it reads schema_migrations to check it).
CREATE ROLE IF NOT EXISTS classtrace_writer_role;
GRANT INSERT ON classtrace.events TO classtrace_writer_role;
-- events arrive through the events_ingest landing table (protobuf, parsed by ClickHouse; 0006)
GRANT INSERT ON classtrace.events_ingest TO classtrace_writer_role;
GRANT INSERT ON classtrace.lesson_summary TO classtrace_writer_role;
GRANT INSERT ON classtrace.metric_points TO classtrace_writer_role;
GRANT INSERT ON classtrace.dead_letters TO classtrace_writer_role;
GRANT SELECT ON classtrace.schema_migrations TO classtrace_writer_role;
-- Erasures (docs/ERASURE.md): the sink finds the person's rows, deletes or blanks them, and audits.
GRANT SELECT, ALTER DELETE, ALTER UPDATE ON classtrace.events TO classtrace_writer_role;
GRANT SELECT, ALTER UPDATE ON classtrace.lesson_summary TO classtrace_writer_role;
GRANT SELECT, INSERT ON classtrace.erasures TO classtrace_writer_role;
CREATE USER IF NOT EXISTS classtrace_sink IDENTIFIED WITH sha256_hash BY '${CLASSTRACE_CH_SINK_SHA256}'
    SETTINGS PROFILE 'classtrace_writer';
GRANT classtrace_writer_role TO classtrace_sink;

-- Analysts of the big-data centre: read everything, change nothing (the profile sets readonly).
CREATE ROLE IF NOT EXISTS classtrace_analyst_role;
GRANT SELECT ON classtrace.* TO classtrace_analyst_role;
CREATE USER IF NOT EXISTS classtrace_analyst IDENTIFIED WITH sha256_hash BY '${CLASSTRACE_CH_ANALYST_SHA256}'
    SETTINGS PROFILE 'classtrace_analyst';
GRANT classtrace_analyst_role TO classtrace_analyst;

-- School accounts: read their own school's rows only. dead_letters keep raw payloads and are
-- not granted. One policy per table for every school account: the school comes from the
-- account's fixed SQL_classtrace_school setting (CONST: the account cannot change it), so a new school needs no new policy.
CREATE ROLE IF NOT EXISTS classtrace_school_role;
GRANT SELECT ON classtrace.events TO classtrace_school_role;
GRANT SELECT ON classtrace.lesson_summary TO classtrace_school_role;
GRANT SELECT ON classtrace.metric_points TO classtrace_school_role;
GRANT SELECT ON classtrace.teacher_portrait TO classtrace_school_role;
CREATE ROW POLICY IF NOT EXISTS own_school ON classtrace.events
    FOR SELECT USING school_id = getSetting('SQL_classtrace_school') TO classtrace_school_role;
CREATE ROW POLICY IF NOT EXISTS own_school ON classtrace.lesson_summary
    FOR SELECT USING school_id = getSetting('SQL_classtrace_school') TO classtrace_school_role;
CREATE ROW POLICY IF NOT EXISTS own_school ON classtrace.metric_points
    FOR SELECT USING school_id = getSetting('SQL_classtrace_school') TO classtrace_school_role;
-- Everyone else keeps seeing every row: a table with a row policy hides rows from users no
-- policy names, so the unrestricted roles get an explicit permissive one.
CREATE ROW POLICY IF NOT EXISTS all_schools ON classtrace.events
    FOR SELECT USING 1 TO classtrace_analyst_role, classtrace_writer_role, classtrace_migrator_role;
CREATE ROW POLICY IF NOT EXISTS all_schools ON classtrace.lesson_summary
    FOR SELECT USING 1 TO classtrace_analyst_role, classtrace_writer_role, classtrace_migrator_role;
CREATE ROW POLICY IF NOT EXISTS all_schools ON classtrace.metric_points
    FOR SELECT USING 1 TO classtrace_analyst_role, classtrace_writer_role, classtrace_migrator_role;
-- One account per school: copy these two statements per school (name, hash, school id).
CREATE USER IF NOT EXISTS school_s001 IDENTIFIED WITH sha256_hash BY '${CLASSTRACE_CH_SCHOOL_S001_SHA256}'
    SETTINGS PROFILE 'classtrace_school', SQL_classtrace_school = 's001' CONST;
GRANT classtrace_school_role TO school_s001;
