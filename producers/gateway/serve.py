"""Run an ASGI app in the foreground with uvicorn until SIGINT/SIGTERM, then exit 0.

uvicorn re-raises the stopping signal after its graceful shutdown (so the process dies *by* the
signal); a supervised role should instead report a clean stop, so the server here forgets the
captured signal once it has started shutting down.
"""

from __future__ import annotations

import logging
from types import FrameType
from typing import Any

import uvicorn

__all__ = ["ForegroundServer", "serve"]

logger = logging.getLogger(__name__)


class ForegroundServer(uvicorn.Server):
    """A uvicorn server whose SIGINT/SIGTERM means "stop gracefully and return"."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()  # private in uvicorn; see the module docstring


def serve(app: Any, host: str, port: int, **options: Any) -> int:
    """Serve ``app`` (uvloop + httptools when installed); 0 after a clean stop, 1 if it never started."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=options.pop("log_level", "warning"),
        access_log=False,
        timeout_graceful_shutdown=options.pop("timeout_graceful_shutdown", 5),
        **options,
    )
    server = ForegroundServer(config)
    server.run()
    return 0 if server.started else 1
