"""``classtrace sink``: the ClickHouse sink as a role of its own, in the foreground.

Consumes ``classtrace.events.v1``, ``classtrace.metrics.v1`` and ``classtrace.deadletter.v1`` and
writes ``events``, ``lesson_summary``, ``metric_points`` and ``dead_letters`` (docs/DESIGN.md §6), at least
once with re-deliveries collapsed. Replicas started with the same ``--group`` share the
partitions. SIGINT/SIGTERM drain it: the open batch is inserted and committed, then it exits.
Prometheus metrics (lag, rows, insert latency, retries) are served on ``--metrics-port``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from classtrace.settings import Settings

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)

MAX_ROWS = 100_000
MAX_WAIT = 2.0


def register(sub: Any) -> None:
    """Add the ``sink`` subcommand and its batching / group / metrics flags."""
    parser = sub.add_parser(
        "sink", help="write Kafka topics into ClickHouse (production role)", description=__doc__
    )
    parser.add_argument("--group", default="classtrace-sink", help="consumer group (default classtrace-sink)")
    parser.add_argument("--database", default="classtrace", help="ClickHouse database (default classtrace)")
    # sinks.batcher.BatchPolicy's defaults (a test keeps them equal; importing the sink here
    # would load it for every `classtrace` command)
    parser.add_argument(
        "--max-rows", type=int, default=MAX_ROWS, help=f"flush a batch at this many rows (default {MAX_ROWS})"
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=MAX_WAIT,
        help=f"flush a batch this many seconds after its first record (default {MAX_WAIT:g})",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=9464, help="Prometheus /metrics port (default 9464; -1 = off)"
    )
    parser.add_argument(
        "--skip-migrations",
        action="store_true",
        help="do not apply schema migrations at start (for a writer account without DDL rights)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run until SIGINT/SIGTERM; 0 after a clean drain, 1 when the sink failed."""
    from prometheus_client import start_http_server

    from classtrace.cli.common import resolve_bootstrap
    from classtrace.cli.stack import record_key
    from classtrace.clickhouse import close_quietly, connect
    from classtrace.migrate import apply_migrations
    from sinks.batcher import BatchPolicy
    from sinks.service import SinkService

    bootstrap = resolve_bootstrap(settings)
    client = connect(settings, database=args.database)
    try:
        if not args.skip_migrations:
            apply_migrations(client, args.database)
        if args.metrics_port >= 0:
            start_http_server(args.metrics_port)
        sink = SinkService(
            client,
            bootstrap,
            settings.kafka_options,
            database=args.database,
            group=args.group,
            policy=BatchPolicy(max_rows=args.max_rows, max_wait=args.max_wait),
            record_key=record_key(settings),
            keep_raw=settings.deadletter_keep_raw,
        )
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        sink.start()
        logger.info(
            "sink running group=%s bootstrap=%s metrics_port=%d", args.group, bootstrap, args.metrics_port
        )
        while not stop.wait(1.0):
            if not sink.alive():
                break
        sink.stop()
        if sink.failure is not None:
            logger.error("sink failed: %s", sink.failure)
            return 1
        return 0
    finally:
        close_quietly(client)
