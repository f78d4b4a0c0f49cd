"""Every table and topic has a retention with a reason, and operators override it by env var."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from classtrace.errors import ConfigError
from classtrace.migrate import MIGRATIONS_TABLE, load_migrations
from classtrace.retention import POLICY, Kind, configurable, find, table_ttls
from classtrace.settings import Settings
from classtrace.topics import ALL_TOPICS, EVENTS, topic_specs

ROOT = Path(__file__).resolve().parents[2]
_CREATE = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?(MATERIALIZED\s+VIEW|VIEW|TABLE)\s+(?:IF\s+NOT\s+EXISTS\s+)?`db`\.(\w+)",
    re.I,
)


def _created_by_migrations() -> set[tuple[str, Kind]]:
    created = {(MIGRATIONS_TABLE, Kind.TABLE)}
    for migration in load_migrations():
        for statement in migration.statements("db"):
            body = re.sub(r"^(\s*--[^\n]*\n)+", "", statement)
            if match := _CREATE.match(body):
                kind = Kind.TABLE if match.group(1).upper() == "TABLE" else Kind.VIEW
                created.add((match.group(2), kind))
    return created


def test_every_table_and_view_the_migrations_create_has_a_retention_entry():
    entries = {(e.name, e.kind) for e in POLICY if e.kind is not Kind.TOPIC}
    created = _created_by_migrations()
    assert created - entries == set(), "add an entry to classtrace/retention.py"
    assert entries - created == set(), "an entry names nothing the migrations create"


def test_every_topic_has_a_retention_entry_and_takes_its_retention_from_it():
    topics = {e.name for e in POLICY if e.kind is Kind.TOPIC}
    assert topics == {spec.name for spec in ALL_TOPICS}
    for spec in ALL_TOPICS:
        days = find(spec.name, Kind.TOPIC).days
        if days is None:
            assert spec.config == {"cleanup.policy": "compact"}
        else:
            assert spec.config["retention.ms"] == str(days * 86_400_000)


def test_defaults_are_the_documented_ones():
    assert (
        table_ttls().items()
        >= {
            "events": ("occurred_at", 180),
            "metric_points": ("window_start", 180),
            "lesson_summary": ("started_at", 1095),
            "dead_letters": ("received_at", 30),
            "device_status": ("at", 180),
            "alerts": ("raised_at", 365),
        }.items()
    )
    assert {s.name: s.config.get("retention.ms") for s in ALL_TOPICS if "retention.ms" in s.config} == {
        "classtrace.events.v1": "604800000",
        "classtrace.metrics.v1": "604800000",
        "classtrace.deadletter.v1": "2592000000",
        "classtrace.access.v1": "604800000",
        "classtrace.alerts.v1": "604800000",
    }


def test_every_entry_is_in_the_docs_with_its_reason_and_env_var():
    text = (ROOT / "docs/RETENTION.md").read_text(encoding="utf-8")
    for entry in POLICY:
        assert f"`{entry.name}`" in text, entry.name
        if entry.env_var:
            assert f"`{entry.env_var}`" in text, entry.env_var
        assert entry.reason.strip(), entry.name


def test_env_vars_override_tables_and_topics():
    env = {"CLASSTRACE_RETENTION_EVENTS_DAYS": "90", "CLASSTRACE_RETENTION_EVENTS_TOPIC_DAYS": "3"}
    settings = Settings.load({}, environ=env)
    assert settings.retention_days == {"events": 90, "events_topic": 3}
    assert table_ttls(settings.retention_days)["events"] == ("occurred_at", 90)
    assert table_ttls(settings.retention_days)["dead_letters"] == ("received_at", 30)
    events = next(s for s in topic_specs(settings.retention_days) if s.name == EVENTS)
    assert events.config == {"retention.ms": str(3 * 86_400_000)}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CLASSTRACE_RETENTION_EVENT_DAYS", "90", "no such retention setting"),  # misspelt table
        ("CLASSTRACE_RETENTION_SCHEMA_MIGRATIONS_DAYS", "90", "no such retention setting"),  # fixed
        ("CLASSTRACE_RETENTION_EVENTS_DAYS", "0", r"whole days in \[1, 36500\]"),
        ("CLASSTRACE_RETENTION_EVENTS_DAYS", "90d", r"whole days in \[1, 36500\]"),
        ("CLASSTRACE_RETENTION_EVENTS_DAYS", "-5", r"whole days in \[1, 36500\]"),
        ("CLASSTRACE_RETENTION_LESSON_SUMMARY_DAYS", "99999", r"whole days in \[1, 36500\]"),
    ],
)
def test_a_bad_retention_setting_names_its_env_var(name, value, message):
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.load({}, environ={name: value})
    assert caught.value.setting == name


def test_settings_built_in_code_are_checked_too():
    with pytest.raises(ConfigError, match="CLASSTRACE_RETENTION_NOPE_DAYS"):
        Settings.load({"retention_days": {"nope": 3}}, environ={})
    keys = {"events", "metric_points", "lesson_summary", "dead_letters", "events_topic", "deadletter_topic"}
    assert set(configurable()) >= keys
