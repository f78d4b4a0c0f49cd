"""Defaults of the gateway's HTTP hardening limits, in a module light enough for ``--help``.

The failed-authentication limit itself is :class:`classtrace.authlimit.FailureLimiter` (the
dashboard's viewer tokens need it too); docs/INGEST.md ("Limits") explains each value.
"""

from __future__ import annotations

__all__ = ["BODY_TIMEOUT", "HEADER_TIMEOUT", "OFFLOAD_BYTES", "OFFLOAD_THREADS"]

HEADER_TIMEOUT = 10.0
"""Seconds from a connection's start (or a later request's first byte) to the end of its headers."""
BODY_TIMEOUT = 30.0
"""Seconds to receive a whole body: 1 MiB at ~35 kB/s, a poor classroom link."""
OFFLOAD_BYTES = 64 * 1024
"""Bodies larger than this are decoded and judged off the event loop; a 100-event request is
~10–20 kB, so the hot path stays inline."""
OFFLOAD_THREADS = 2
"""Large bodies decoded at once: bounds the memory their decoding holds (the rest wait)."""
