"""``classtrace up``: the whole stack on the embedded default, in one command.

This process owns what cannot be shared between processes — the Tansu broker subprocess and the
chDB engine (one per directory per process) — and serves the engine to the other processes over
a loopback ClickHouse-HTTP endpoint. The ClickHouse sink runs here, next to the engine; the
gateway (with the dashboard), the Faust worker and the simulator run as supervised children.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from classtrace.errors import ClasstraceError
from classtrace.runtime import Runtime, clear_runtime, read_runtime, write_runtime
from classtrace.settings import Settings

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "up",
        help="run the whole stack on the embedded default (broker, ClickHouse, gateway, worker, "
        "sink, dashboard)",
        description=__doc__,
    )
    parser.add_argument(
        "--simulate",
        type=int,
        default=0,
        metavar="N",
        help="stream lessons of N simulated classrooms into the stack",
    )
    parser.add_argument(
        "--lessons", type=int, default=0, metavar="M", help="with --simulate: lessons per classroom"
    )
    parser.add_argument("--seed", type=int, default=None, help="with --simulate: random seed")
    parser.add_argument(
        "--speed",
        type=float,
        default=None,
        help="with --simulate: simulated seconds per real second (default: the simulator's)",
    )
    parser.add_argument(
        "--no-worker", action="store_true", help="do not start the Faust worker (ingest only)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from classtrace.cli.stack import EmbeddedStack

    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # one made before (or by another tool) is tightened too
    running = read_runtime(data_dir)
    if running is not None:
        raise ClasstraceError(
            f"a stack already runs on {data_dir} (pid {running.pid}); stop it first or pick "
            "another --data-dir"
        )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with ExitStack() as stack:
        embedded = EmbeddedStack(settings, with_worker=not args.no_worker)
        stack.callback(embedded.stop)
        runtime = embedded.start()
        write_runtime(data_dir, runtime)
        stack.callback(clear_runtime, data_dir, runtime.pid)
        _announce(runtime, embedded.viewer_url())
        if args.simulate:
            embedded.simulate(args.simulate, args.lessons, args.seed, args.speed)
        while not stop.wait(1.0):
            embedded.check()
        print("\nstopping classtrace …", flush=True)
    return 0


def _announce(runtime: Runtime, viewer_url: str) -> None:
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        f"classtrace is up ({started}). Ctrl-C stops it.",
        f"  dashboard:  {viewer_url}",
        f"  gateway:    {runtime.gateway_url}/v1/events",
        f"  kafka:      {runtime.kafka_bootstrap}",
        '  clickhouse: try  classtrace query "SELECT count() FROM classtrace.events FINAL"',
    ]
    print("\n".join(lines), flush=True)
