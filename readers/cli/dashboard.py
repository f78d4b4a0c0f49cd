"""``classtrace dashboard``: the live class-inspection dashboard as a role of its own.

Serves ``/``, ``/v1/live/classrooms`` and ``/v1/live/stream`` (docs/DESIGN.md §5) plus ``/healthz`` and
``/metrics`` on ``--port`` (default 8081, apart from the gateway's 8080). Its state is rebuilt from
``classtrace.metrics.v1`` at every start, so replicas need no storage of their own. Under
``classtrace up`` the same routes are mounted in the gateway instead.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from classtrace.settings import Settings

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    """Add the ``dashboard`` subcommand and its ``--port`` / ``--host`` flags."""
    parser = sub.add_parser(
        "dashboard", help="serve the live class-inspection dashboard", description=__doc__
    )
    parser.add_argument("--port", type=int, default=8081, help="HTTP port (default 8081; 0 = any free)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until interrupted; the broker comes from settings or the running ``classtrace up``."""
    import uvicorn

    from classtrace.cli.common import resolve_bootstrap
    from classtrace.cli.stack import record_key
    from readers.dashboard.app import build_app

    bootstrap = resolve_bootstrap(settings)
    app = build_app(bootstrap, settings.kafka_options, record_key=record_key(settings))
    logger.info("dashboard on http://%s:%d/ bootstrap=%s", args.host, args.port, bootstrap)
    # SSE streams end when the service stops; a short grace keeps Ctrl-C snappy.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3)
    return 0
