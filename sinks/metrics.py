"""Prometheus metrics of the sink: lag, rows inserted, insert latency, retries, dead letters.

Registered once per process in the default registry (``classtrace sink`` serves it on
``--metrics-port``; ``classtrace up`` exposes the registry of its own process). Several
:class:`~sinks.service.SinkService` objects in one process (tests) share the series, labelled by
consumer group.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["SinkMetrics", "sink_metrics"]


@dataclass(frozen=True)
class SinkMetrics:
    """The sink's series (see each ``documentation`` string)."""

    lag: Gauge
    rows_inserted: Counter
    insert_seconds: Histogram
    retries: Counter
    dead_letters: Counter
    records: Counter
    commits: Counter
    commit_failures: Counter
    row_fallbacks: Counter


@cache
def sink_metrics() -> SinkMetrics:
    """The process-wide sink metrics (created on first use)."""
    return SinkMetrics(
        lag=Gauge(
            "classtrace_sink_lag_records",
            "Records on the partition not yet committed by the sink (high watermark - committed)",
            ["group", "topic", "partition"],
        ),
        rows_inserted=Counter(
            "classtrace_sink_rows_inserted", "Rows inserted into ClickHouse by the sink", ["table"]
        ),
        insert_seconds=Histogram(
            "classtrace_sink_insert_seconds",
            "Duration of one successful block insert",
            ["table"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
        retries=Counter(
            "classtrace_sink_insert_retries",
            "Inserts retried after a transient ClickHouse failure",
            ["table"],
        ),
        dead_letters=Counter(
            "classtrace_sink_dead_letters",
            "Rows the sink dead-lettered itself (undecodable record, refused by ClickHouse)",
            ["reason"],
        ),
        records=Counter("classtrace_sink_records", "Kafka records consumed by the sink", ["topic"]),
        commits=Counter("classtrace_sink_commits", "Offset commits after a successful flush", ["group"]),
        commit_failures=Counter(
            "classtrace_sink_commit_failures",
            "Offset commits that failed (the records are delivered again: duplicates, no loss)",
            ["group"],
        ),
        row_fallbacks=Counter(
            "classtrace_sink_row_fallbacks",
            "Event blocks ClickHouse would not take as protobuf, written as rows instead (a "
            "steady rise: a server older than 25.6 or a schema problem; see the sink's log)",
        ),
    )
