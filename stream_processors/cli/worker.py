"""``classtrace worker``: the Faust worker computing the live metrics (docs/DESIGN.md §7), in the foreground.

Reads classtrace.events.v1, writes classtrace.metrics.v1 and classtrace.deadletter.v1. Workers
started with the same ``--app-id`` share the partitions. Ctrl-C / SIGTERM stop it cleanly.
Without CLASSTRACE_KAFKA_BOOTSTRAP it joins the running ``classtrace up`` of the data dir.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from classtrace.cli.common import resolve_bootstrap
from classtrace.errors import ConfigError
from classtrace.settings import Settings

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``worker`` subcommand."""
    parser = subparsers.add_parser(
        "worker",
        help="run a Faust worker computing the live classroom metrics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--app-id",
        default="classtrace-worker",
        help="Faust app id: the consumer group and changelog topic prefix (default: %(default)s)",
    )
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=0.2,
        metavar="S",
        help="longest wait before a batch of records is processed and its metrics emitted, "
        "twice that while a backlog is read (default: %(default)s s)",
    )
    parser.add_argument(
        "--summary-interval",
        type=float,
        default=1.0,
        metavar="S",
        help="live lesson summaries at most this often per lesson (default: %(default)s s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Ensure the topics, then run the worker until SIGINT/SIGTERM; returns the exit code."""
    from faust import Worker

    from classtrace.cli.stack import record_key
    from classtrace.kafka import check_reachable, ensure_topics, make_admin
    from classtrace.topics import EVENTS
    from stream_processors.agents import create_worker_app
    from stream_processors.app import WorkerConfig, tune_gc

    bootstrap = resolve_bootstrap(settings)
    check_reachable(bootstrap, settings.kafka_options)
    ensure_topics(bootstrap, settings.partitions, settings.kafka_options)
    # Changelogs must have as many partitions as the events topic (a classroom's values are
    # logged to its records' partition), which on a real cluster may differ from the setting.
    metadata = make_admin(bootstrap, settings.kafka_options).list_topics(EVENTS, timeout=10)
    partitions = len(metadata.topics[EVENTS].partitions) or settings.partitions
    if args.flush_interval <= 0:
        raise ConfigError("flush_interval", "must be > 0")
    config = WorkerConfig(
        bootstrap=bootstrap,
        partitions=partitions,
        data_dir=settings.data_dir,
        app_id=args.app_id,
        flush_interval_s=args.flush_interval,
        summary_interval_s=args.summary_interval,
        kafka_options=settings.kafka_options,
        record_key=record_key(settings),
        keep_raw=settings.deadletter_keep_raw,
        state_horizon_s=settings.state_horizon_s,
        state_scan_s=settings.state_scan_s,
    )
    app, processor = create_worker_app(config)
    tune_gc()
    logger.info(
        "worker starting app_id=%s bootstrap=%s partitions=%d state_horizon_s=%g",
        args.app_id, bootstrap, partitions, config.state_horizon_s,
    )  # fmt: skip
    worker = Worker(app, loglevel=settings.log_level, redirect_stdouts=False, quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    else:  # pragma: no cover - execute_from_commandline always raises SystemExit
        code = 0
    stats = processor.stats
    logger.info(
        "worker stopped records=%d batches=%d events=%d duplicates=%d dead_letters=%d summaries=%d "
        "errors=%d first_record_at=%.3f last_batch_at=%.3f",
        stats.records, stats.batches, stats.events, stats.duplicates, stats.dead_letters, stats.summaries,
        stats.errors, stats.first_record_at, stats.last_batch_at,
    )  # fmt: skip
    return code
