"""Numbered ClickHouse migrations (``NNNN_name.sql``), applied in order by :mod:`classtrace.migrate`.

Each file holds one or more statements separated by ``;`` at the end of a line; ``${db}`` stands
for the (quoted) target database. Statements must be idempotent (``IF NOT EXISTS``,
``CREATE OR REPLACE VIEW``) so a migration interrupted half-way can simply be re-run. Never edit a
released file: add the next number instead (the checksum of an applied file is checked).
"""
