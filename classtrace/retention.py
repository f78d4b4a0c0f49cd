"""How long each ClickHouse table and Kafka topic keeps data, and why (docs/RETENTION.md).

Most people in this data are children. Chinese law (PIPL art. 19, 47; 儿童个人信息网络保护规定
art. 20) asks for the shortest retention the purpose needs and deletion once it is met, so every
table and topic is listed in :data:`POLICY` with its default and its reason, and a new one is one
more entry (``tests/unit/test_retention.py`` fails for a table or topic without one).

A table keeps its rows ``days`` after its time ``column`` (a ClickHouse ``TTL``, set by migration
0008 and brought to the configured value by :func:`classtrace.migrate.apply_retention`); a topic
keeps its records ``days`` (``retention.ms``, read by :mod:`classtrace.topics`). An operator
overrides a default with ``CLASSTRACE_RETENTION_<KEY>_DAYS`` (:func:`overrides_from_env`), e.g.
``CLASSTRACE_RETENTION_EVENTS_DAYS=90``; an entry with ``days=None`` holds no personal data or
nothing at all and is not configurable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from classtrace.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "MAX_DAYS",
    "POLICY",
    "Kind",
    "Retention",
    "check_overrides",
    "configurable",
    "find",
    "overrides_from_env",
    "parse_ttl",
    "table_ttls",
    "topic_retention_ms",
    "ttl_expression",
]

ENV_PREFIX = "CLASSTRACE_RETENTION_"
MAX_DAYS = 36_500
"""Upper bound of an override (100 years): a larger number is a typo, not a policy."""
_DAY_MS = 24 * 3600 * 1000


class Kind(StrEnum):
    """What an entry governs."""

    TABLE = "table"
    VIEW = "view"
    TOPIC = "topic"


@dataclass(frozen=True)
class Retention:
    """The retention of one table, view or topic."""

    name: str
    """Table, view or topic name, as created by the migrations or :mod:`classtrace.topics`."""
    kind: Kind
    days: int | None
    """Default retention in days; None = no time limit (``reason`` says why that is safe)."""
    reason: str
    column: str = ""
    """A table's time column: a row goes ``days`` after it."""

    @property
    def key(self) -> str:
        """Settings key: the table name, or ``<middle part>_topic`` for a topic; '' if fixed."""
        if self.days is None:
            return ""
        return self.name if self.kind is not Kind.TOPIC else self.name.split(".")[1] + "_topic"

    @property
    def env_var(self) -> str:
        """The override's environment variable, '' when the entry is not configurable."""
        return f"{ENV_PREFIX}{self.key.upper()}_DAYS" if self.key else ""


POLICY: tuple[Retention, ...] = (
    Retention(
        "events",
        Kind.TABLE,
        180,
        "Raw events carry pseudonymous student traces: one semester (~20 weeks) plus margin for "
        "term reports and re-computation; lesson_summary keeps the long-term value.",
        column="occurred_at",
    ),
    Retention(
        "metric_points",
        Kind.TABLE,
        180,
        "10 s classroom series behind lesson reports: useful for the semester they describe, "
        "then summarised by lesson_summary.",
        column="window_start",
    ),
    Retention(
        "lesson_summary",
        Kind.TABLE,
        3 * 365,
        "Class-level aggregates, no student identifier; teacher portraits compare years, and a "
        "junior or senior high school cohort spans three.",
        column="started_at",
    ),
    Retention(
        "dead_letters",
        Kind.TABLE,
        30,
        "Rejected input kept raw, possibly with a raw student id sent by mistake: long enough to "
        "investigate and fix a producer, no longer.",
        column="received_at",
    ),
    Retention(
        "erasures",
        Kind.TABLE,
        3 * 365,
        "Audit of executed erasures, by digest only: proof of what was removed and when, kept as "
        "long as the longest-kept table (lesson_summary) could have held the person's rows.",
        column="requested_at",
    ),
    Retention(
        "access_log",
        Kind.TABLE,
        365,
        "Audit of who read which school's data (viewer ids, never tokens or query values): a school "
        "year plus its summer, so a complaint about the past year can still be checked, no longer.",
        column="at",
    ),
    Retention(
        "device_status",
        Kind.TABLE,
        180,
        "Device state changes (online/offline, battery, spool depth; no personal data): a semester "
        "of device history to find a flaky classroom network, as long as the events it explains.",
        column="at",
    ),
    Retention(
        "alerts",
        Kind.TABLE,
        365,
        "Raised and cleared alerts of classrooms and devices (ids, no student): a school year plus "
        "its summer, to review how often a room was offline or inattentive over the past year.",
        column="raised_at",
    ),
    Retention(
        "events_ingest",
        Kind.TABLE,
        None,
        "Null engine: a landing shape that stores nothing (its view writes events).",
    ),
    Retention(
        "events_ingest_mv",
        Kind.VIEW,
        None,
        "Materialised view without storage of its own: writes into events, which expires.",
    ),
    Retention(
        "teacher_portrait",
        Kind.VIEW,
        None,
        "View over lesson_summary: shows what lesson_summary still holds.",
    ),
    Retention(
        "schema_migrations",
        Kind.TABLE,
        None,
        "Which migrations were applied: schema bookkeeping, no personal data.",
    ),
    Retention(
        "classtrace.events.v1",
        Kind.TOPIC,
        7,
        "Replay horizon for the worker and the sink; equals validation's MAX_AGE (7 d), so a "
        "consumer down for less than the late-event horizon loses nothing.",
    ),
    Retention(
        "classtrace.metrics.v1",
        Kind.TOPIC,
        7,
        "Same replay horizon as events: the sink catches up after an outage of up to a week.",
    ),
    Retention(
        "classtrace.deadletter.v1",
        Kind.TOPIC,
        30,
        "As dead_letters: time to investigate rejects, which may hold raw ids.",
    ),
    Retention(
        "classtrace.access.v1",
        Kind.TOPIC,
        7,
        "Transport of access records to access_log: the same one-week replay horizon as the other "
        "topics; the table is the audit record.",
    ),
    Retention(
        "classtrace.alerts.v1",
        Kind.TOPIC,
        7,
        "Transport of alerts to the alerts table, the dashboard and an operator's router: the same "
        "one-week replay horizon as the other topics; the table is the record.",
    ),
    Retention(
        "classtrace.devices.v1",
        Kind.TOPIC,
        None,
        "Compacted registry: the latest registration per device (token hash, no personal data) "
        "is the live state, so it cannot expire.",
    ),
    Retention(
        "classtrace.erasures.v1",
        Kind.TOPIC,
        None,
        "Compacted erasure ledger (digests, no identifier in clear): it must outlive every source a "
        "replay or backfill could bring an erased person back from, so it cannot expire.",
    ),
    Retention(
        "classtrace.viewers.v1",
        Kind.TOPIC,
        None,
        "Compacted registry of dashboard viewers (token hashes, labels): live state, cannot expire.",
    ),
)


def find(name: str, kind: Kind) -> Retention:
    """The entry for ``name``; KeyError names a table or topic that has no entry."""
    for entry in POLICY:
        if entry.name == name and entry.kind is kind:
            return entry
    raise KeyError(f"no retention entry for {kind} {name!r}: add one to classtrace/retention.py")


def configurable() -> dict[str, Retention]:
    """Settings key → entry, for every entry an operator may override."""
    return {entry.key: entry for entry in POLICY if entry.key}


def check_overrides(overrides: Mapping[str, int]) -> dict[str, int]:
    """``overrides`` as a plain dict; ValueError names the env var of an unknown key or bad value."""
    known = configurable()
    for key, days in overrides.items():
        if key not in known:
            raise ValueError(
                f"no configurable retention {key!r} ({ENV_PREFIX}{key.upper()}_DAYS); "
                f"known: {', '.join(sorted(known))}"
            )
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            raise ValueError(f"{known[key].env_var} must be whole days in [1, {MAX_DAYS}], got {days!r}")
    return dict(overrides)


def overrides_from_env(environ: Mapping[str, str]) -> dict[str, int]:
    """Overrides from ``CLASSTRACE_RETENTION_<KEY>_DAYS`` variables.

    Every variable under the prefix must be one of :func:`configurable`'s: a misspelt name
    raises :class:`ConfigError` instead of silently keeping children's data for the default.
    """
    known = {entry.env_var: entry for entry in configurable().values()}
    overrides: dict[str, int] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        entry = known.get(name)
        if entry is None:
            raise ConfigError(name, f"no such retention setting; known: {', '.join(sorted(known))}")
        text = raw.strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
            raise ConfigError(name, f"expected whole days in [1, {MAX_DAYS}], got {raw!r}")
        overrides[entry.key] = int(text)
    return overrides


def _days(entry: Retention, overrides: Mapping[str, int] | None) -> int | None:
    if entry.days is None:
        return None
    return (overrides or {}).get(entry.key, entry.days)


def ttl_expression(column: str, days: int) -> str:
    """The TTL clause for ``column`` + ``days``, spelt as ClickHouse prints it back.

    ``toDateTime``: a TTL must be a Date or DateTime, and the tables' times are DateTime64.
    """
    return f"toDateTime({column}) + toIntervalDay({days})"


_TTL = re.compile(r"\bTTL\s+toDateTime\((\w+)\)\s*\+\s*toIntervalDay\((\d+)\)\s*(?:SETTINGS\b|$)")


def parse_ttl(engine_full: str) -> tuple[str, int] | None:
    """``(column, days)`` of a table TTL of :func:`ttl_expression`'s form, else None (none or other)."""
    match = _TTL.search(engine_full)
    return (match.group(1), int(match.group(2))) if match else None


def table_ttls(overrides: Mapping[str, int] | None = None) -> dict[str, tuple[str, int]]:
    """Table → ``(column, days)`` for every table with a retention, overrides applied."""
    ttls: dict[str, tuple[str, int]] = {}
    for entry in POLICY:
        days = _days(entry, overrides)
        if entry.kind is Kind.TABLE and days is not None:
            ttls[entry.name] = (entry.column, days)
    return ttls


def topic_retention_ms(topic: str, overrides: Mapping[str, int] | None = None) -> str | None:
    """``retention.ms`` of ``topic`` as Kafka wants it (a string), None when it does not expire."""
    days = _days(find(topic, Kind.TOPIC), overrides)
    return None if days is None else str(days * _DAY_MS)
