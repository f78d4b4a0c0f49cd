"""Kafka topic names and their configuration (docs/DESIGN.md §5): the contract between the stages.

Retention comes from :mod:`classtrace.retention` (the one home of every table's and topic's
retention, docs/RETENTION.md): :data:`ALL_TOPICS` carries the defaults, :func:`topic_specs` the
values an operator configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from classtrace.retention import topic_retention_ms

__all__ = [
    "ACCESS",
    "ALERTS",
    "ALL_TOPICS",
    "DEADLETTER",
    "DEVICES",
    "ERASURES",
    "EVENTS",
    "METRICS",
    "VIEWERS",
    "TopicSpec",
    "topic_specs",
]

EVENTS = "classtrace.events.v1"
"""Validated events: key = classroom_id, value = EventBatch (≤ 1000 events of that classroom)."""
METRICS = "classtrace.metrics.v1"
"""Faust output: key = classroom_id, value = MetricBatch (points, lesson summaries, devices)."""
DEADLETTER = "classtrace.deadletter.v1"
"""Rejected events and records: value = DeadLetter, with the reason and the raw bytes."""
DEVICES = "classtrace.devices.v1"
"""Compacted device registry: key = school_id/device_id (device ids repeat across schools),
value = DeviceRegistration (token hash only)."""
ERASURES = "classtrace.erasures.v1"
"""Compacted erasure ledger (docs/ERASURE.md): key = kind/subject digest, value = JSON
:class:`classtrace.erasure.Erasure`; never expires, so no replay brings an erased person back."""
VIEWERS = "classtrace.viewers.v1"
"""Compacted dashboard viewer registry: key = viewer id (token hash only)."""
ACCESS = "classtrace.access.v1"
"""Access log (issue 17): key = viewer id, value = JSON :class:`classtrace.access.AccessRecord`
(who read what, never a token); the sink writes it to ``access_log``."""
ALERTS = "classtrace.alerts.v1"
"""Alerts raised and cleared by the worker (issue 18): key = school_id/classroom_id, value =
``Alert``; the sink writes them to ``alerts``, the dashboard shows their history, and an operator
may route them elsewhere."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic classtrace creates, with the per-topic config it needs."""

    name: str
    config: dict[str, str] = field(default_factory=dict)
    single_partition: bool = False
    """Registries are tiny and read whole: one partition keeps their order total."""


def _spec(name: str, overrides: Mapping[str, int] | None) -> TopicSpec:
    retention_ms = topic_retention_ms(name, overrides)
    if retention_ms is None:  # the registries: compacted, their latest records are the live state
        return TopicSpec(name, {"cleanup.policy": "compact"}, single_partition=True)
    return TopicSpec(name, {"retention.ms": retention_ms})


def topic_specs(retention_days: Mapping[str, int] | None = None) -> tuple[TopicSpec, ...]:
    """Every contract topic, with ``retention_days`` (``Settings.retention_days``) applied."""
    names = (EVENTS, METRICS, DEADLETTER, DEVICES, VIEWERS, ERASURES, ACCESS, ALERTS)
    return tuple(_spec(name, retention_days) for name in names)


ALL_TOPICS: tuple[TopicSpec, ...] = topic_specs()
"""The contract topics with the default retentions (infra/ generates its topic configs from these)."""
