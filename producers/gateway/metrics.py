"""Prometheus metrics of the gateway, on a registry of its own (several apps per test process).

Counters are incremented once per request (``inc(n)``), never per event: a prometheus-client
increment takes a lock, and the per-event path must stay at validation + stamping.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["GatewayMetrics", "reason_label"]

_INDEX = re.compile(r"\[\d+\]")


def reason_label(field: str) -> str:
    """A bounded label from a rejected field path: ``observation.counts[3].count`` → ``...[].count``."""
    return _INDEX.sub("[]", field) or "event"


class GatewayMetrics:
    """``classtrace_gateway_*`` series: requests, events accepted/rejected, publish latency, and the
    hardening counters (failed authentications, 429s, header timeouts)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "classtrace_gateway_requests",
            "HTTP requests to POST /v1/events by response status.",
            ["status"],
            registry=self.registry,
        )
        self.accepted = Counter(
            "classtrace_gateway_events_accepted",
            "Events written to classtrace.events.v1.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "classtrace_gateway_events_rejected",
            "Events refused one by one (dead-lettered), by the offending field.",
            ["reason"],
            registry=self.registry,
        )
        self.publish_seconds = Histogram(
            "classtrace_gateway_publish_seconds",
            "Time from produce to acks=all confirmation of a request's records.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "classtrace_gateway_auth_failures",
            "Requests to POST /v1/events with a missing, unknown or revoked token, counted by the limiter.",
            registry=self.registry,
        )
        self.auth_throttled = Counter(
            "classtrace_gateway_auth_throttled",
            "Requests refused with 429 because their address or token prefix failed too often.",
            registry=self.registry,
        )
        self.header_timeouts = Counter(
            "classtrace_gateway_header_timeouts",
            "Connections closed because their request line and headers were not complete in time.",
            registry=self.registry,
        )
        self.limiter_keys = Gauge(
            "classtrace_gateway_auth_limiter_keys",
            "Addresses and token prefixes the failed-authentication limiter currently tracks.",
            registry=self.registry,
        )
        self._children: dict[tuple[str, str], Counter] = {}

    def track_limiter(self, size: Callable[[], float]) -> None:
        """Report the limiter's table size at each scrape."""
        self.limiter_keys.set_function(size)

    def request(self, status: int) -> None:
        """Count one response."""
        self._child(self.requests, "requests", str(status)).inc()

    def rejected_event(self, field: str) -> None:
        """Count one rejected event under its reason."""
        self._child(self.rejected, "rejected", reason_label(field)).inc()

    def _child(self, metric: Counter, name: str, label: str) -> Counter:
        key = (name, label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(label)
        return child

    def render(self) -> bytes:
        """The Prometheus text exposition: the gateway's series, then the process-global registry
        (process metrics, and those of routes mounted alongside, e.g. the dashboard's)."""
        return generate_latest(self.registry) + generate_latest(REGISTRY)
