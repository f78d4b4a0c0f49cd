"""Kafka topic names and their configuration (docs/DESIGN.md §5): the contract between the stages."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ALL_TOPICS", "DEADLETTER", "DEVICES", "EVENTS", "METRICS", "VIEWERS", "TopicSpec"]

EVENTS = "classtrace.events.v1"
"""Validated events: key = classroom_id, value = EventBatch (≤ 1000 events of that classroom)."""
METRICS = "classtrace.metrics.v1"
"""Faust output: key = classroom_id, value = MetricBatch (points, lesson summaries, devices)."""
DEADLETTER = "classtrace.deadletter.v1"
"""Rejected events and records: value = DeadLetter, with the reason and the raw bytes."""
DEVICES = "classtrace.devices.v1"
"""Compacted device registry: key = school_id/device_id (device ids repeat across schools),
value = DeviceRegistration (token hash only)."""
VIEWERS = "classtrace.viewers.v1"
"""Compacted dashboard viewer registry: key = viewer id (token hash only)."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic classtrace creates, with the per-topic config it needs."""

    name: str
    config: dict[str, str] = field(default_factory=dict)
    single_partition: bool = False
    """Registries are tiny and read whole: one partition keeps their order total."""


_WEEK_MS = str(7 * 24 * 3600 * 1000)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    # A week of retention covers the validation horizon (events up to 7 days late).
    TopicSpec(EVENTS, {"retention.ms": _WEEK_MS}),
    TopicSpec(METRICS, {"retention.ms": _WEEK_MS}),
    TopicSpec(DEADLETTER, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
    TopicSpec(DEVICES, {"cleanup.policy": "compact"}, single_partition=True),
    TopicSpec(VIEWERS, {"cleanup.policy": "compact"}, single_partition=True),
)
