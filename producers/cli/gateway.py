"""``classtrace gateway``: the HTTP ingest gateway (``POST /v1/events``), in the foreground.

Serves on ``--gateway-port`` (CLASSTRACE_GATEWAY_PORT, default 8080) until SIGINT/SIGTERM, then
exits 0. Kafka is CLASSTRACE_KAFKA_BOOTSTRAP, or the broker of the ``classtrace up`` running on the
data dir. ``--with-dashboard`` mounts the live dashboard routes (``/``, ``/v1/live/*``) in the
same app, as ``classtrace up`` runs it. The hardening limits (failed authentications, header
and body timeouts; docs/INGEST.md) are flags with safe defaults.
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


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    return parse


def register(sub: Any) -> None:
    from classtrace.authlimit import DEFAULT_MAX_FAILURES, DEFAULT_WINDOW
    from producers.gateway.limits import BODY_TIMEOUT, HEADER_TIMEOUT

    parser = sub.add_parser("gateway", help="serve the HTTP ingest gateway", description=__doc__)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)"
    )
    parser.add_argument(
        "--with-dashboard", action="store_true", help="also serve the live dashboard routes on this port"
    )
    limits = parser.add_argument_group("limits (docs/INGEST.md, 'Limits')")
    limits.add_argument(
        "--auth-max-failures",
        type=_positive(int),
        default=DEFAULT_MAX_FAILURES,
        metavar="N",
        help="failed authentications per address or token prefix within --auth-window before "
        f"requests get 429 (default {DEFAULT_MAX_FAILURES})",
    )
    limits.add_argument(
        "--auth-window",
        type=_positive(float),
        default=DEFAULT_WINDOW,
        metavar="SECONDS",
        help=f"seconds failures are counted over, and how long a block lasts (default {DEFAULT_WINDOW:g})",
    )
    limits.add_argument(
        "--header-timeout",
        type=_positive(float),
        default=HEADER_TIMEOUT,
        metavar="SECONDS",
        help="close a connection whose request line and headers are not complete within this "
        f"(default {HEADER_TIMEOUT:g})",
    )
    limits.add_argument(
        "--body-timeout",
        type=_positive(float),
        default=BODY_TIMEOUT,
        metavar="SECONDS",
        help=f"answer 408 to a request whose body is not received within this (default {BODY_TIMEOUT:g})",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from starlette.applications import Starlette
    from starlette.routing import BaseRoute

    from classtrace.cli.common import resolve_bootstrap
    from classtrace.cli.stack import record_key
    from classtrace.kafka import ensure_topics
    from producers.gateway.app import GatewayConfig, build_app
    from producers.gateway.serve import serve

    bootstrap = resolve_bootstrap(settings)
    options = settings.kafka_options
    signed = record_key(settings)
    ensure_topics(bootstrap, settings.partitions, options)  # idempotent; a fresh cluster works too
    routes: list[BaseRoute] = []
    lifespans = []
    if args.with_dashboard:
        # The dashboard is another role (readers/): reached through its entry point, not imported.
        from classtrace.plugins import GATEWAY_ROUTES, load

        live = load(GATEWAY_ROUTES, "dashboard")(bootstrap, options, record_key=signed)
        routes = list(live.routes)

        @contextlib.asynccontextmanager
        async def live_lifespan(_app: Starlette) -> AsyncIterator[None]:
            live.start()
            try:
                yield
            finally:
                live.stop()

        lifespans.append(live_lifespan)
    config = GatewayConfig(
        bootstrap,
        options,
        body_timeout=args.body_timeout,
        auth_max_failures=args.auth_max_failures,
        auth_window=args.auth_window,
        record_key=signed,
        keep_raw=settings.deadletter_keep_raw,
    )
    app = build_app(config, extra_routes=routes, lifespans=lifespans)
    logger.info("gateway on http://%s:%d/v1/events bootstrap=%s", args.host, settings.gateway_port, bootstrap)
    header_timeouts = app.state.gateway.metrics.header_timeouts
    return serve(
        app,
        args.host,
        settings.gateway_port,
        header_timeout=args.header_timeout,
        on_header_timeout=header_timeouts.inc,
    )
