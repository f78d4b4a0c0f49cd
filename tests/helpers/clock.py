"""Test times relative to today, so rows a test writes stay inside every retention.

ClickHouse drops a row already past its table's TTL at insert (classtrace/retention.py: 30 days
for dead_letters), so a fixed date in a test that writes to storage silently loses its rows a
month later. Each time here is computed at import and fixed for the UTC day, so a failure seen
today reproduces today. Pure unit tests that never write may keep fixed dates.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["MONDAY", "NOW", "YESTERDAY"]

_TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

YESTERDAY = _TODAY - timedelta(days=1)
"""00:00 UTC yesterday: a whole day in the past, far inside every retention."""

NOW = YESTERDAY + timedelta(hours=4)
"""A receiver clock, 04:00 UTC yesterday (12:00 in Asia/Shanghai)."""

_WEEK_AGO = _TODAY - timedelta(days=7)
MONDAY = _WEEK_AGO - timedelta(days=_WEEK_AGO.weekday()) + timedelta(hours=1)
"""01:00 UTC (09:00 Asia/Shanghai) of the latest Monday at least a week ago: its week is over."""
