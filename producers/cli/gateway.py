"""``classtrace gateway``: the HTTP ingest gateway (``POST /v1/events``), in the foreground.

Serves on ``--gateway-port`` (CLASSTRACE_GATEWAY_PORT, default 8080) until SIGINT/SIGTERM, then
exits 0. Kafka is CLASSTRACE_KAFKA_BOOTSTRAP, or the broker of the ``classtrace up`` running on the
data dir. ``--with-dashboard`` mounts the live dashboard routes (``/``, ``/v1/live/*``) in the
same app, as ``classtrace up`` runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from classtrace.settings import Settings

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    parser = sub.add_parser("gateway", help="serve the HTTP ingest gateway", description=__doc__)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)"
    )
    parser.add_argument(
        "--with-dashboard", action="store_true", help="also serve the live dashboard routes on this port"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from starlette.applications import Starlette
    from starlette.routing import BaseRoute

    from classtrace.cli.common import resolve_bootstrap
    from classtrace.kafka import ensure_topics
    from producers.gateway.app import GatewayConfig, build_app
    from producers.gateway.serve import serve

    bootstrap = resolve_bootstrap(settings)
    options = settings.kafka_options
    ensure_topics(bootstrap, settings.partitions, options)  # idempotent; a fresh cluster works too
    routes: list[BaseRoute] = []
    lifespans = []
    if args.with_dashboard:
        # The dashboard is another role (readers/): reached through its entry point, not imported.
        from classtrace.plugins import GATEWAY_ROUTES, load

        live = load(GATEWAY_ROUTES, "dashboard")(bootstrap, options)
        routes = list(live.routes)

        @contextlib.asynccontextmanager
        async def live_lifespan(_app: Starlette) -> AsyncIterator[None]:
            live.start()
            try:
                yield
            finally:
                live.stop()

        lifespans.append(live_lifespan)
    app = build_app(GatewayConfig(bootstrap, options), extra_routes=routes, lifespans=lifespans)
    logger.info("gateway on http://%s:%d/v1/events bootstrap=%s", args.host, settings.gateway_port, bootstrap)
    return serve(app, args.host, settings.gateway_port)
