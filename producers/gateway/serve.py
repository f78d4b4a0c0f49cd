"""Run an ASGI app in the foreground with uvicorn until SIGINT/SIGTERM, then exit 0.

uvicorn re-raises the stopping signal after its graceful shutdown (so the process dies *by* the
signal); a supervised role should instead report a clean stop, so the server here forgets the
captured signal once it has started shutting down.

uvicorn (0.55) has no header-read timeout: ``timeout_keep_alive`` runs only between requests,
so a connection that never finishes its request line and headers (slowloris), or sends nothing
at all, is kept forever. :func:`header_deadline_protocol` adds one through uvicorn's supported
extension point, a protocol class given as ``http=``; it subclasses the httptools protocol
(httptools is a dependency), whose parser callbacks it hooks; pyproject pins uvicorn to the
minor version it was written against.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import FrameType
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from producers.gateway.limits import HEADER_TIMEOUT

__all__ = ["ForegroundServer", "header_deadline_protocol", "serve"]

logger = logging.getLogger(__name__)

_TIMEOUT_BODY = b'{"error": "request line and headers not received in time"}'
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class ForegroundServer(uvicorn.Server):
    """A uvicorn server whose SIGINT/SIGTERM means "stop gracefully and return"."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()  # private in uvicorn; see the module docstring


class _HeaderDeadlineProtocol(HttpToolsProtocol):
    """Closes a connection (with a 408 when nothing else is being answered on it) whose request
    line and headers are not complete ``header_timeout`` seconds after the connection was made,
    or after the first byte of a later request on it."""

    header_timeout: ClassVar[float] = HEADER_TIMEOUT
    on_timeout: ClassVar[tuple[Callable[[], object], ...]] = ()  # a tuple: no method binding

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # the connection's own deadline may still be running
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # else a response is being written
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()
        for callback in self.on_timeout:
            callback()


def header_deadline_protocol(
    header_timeout: float = HEADER_TIMEOUT, on_timeout: Callable[[], object] | None = None
) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a header-read deadline, for ``uvicorn.Config(http=...)``;
    ``on_timeout`` is called once per connection closed by it (a metric)."""
    if not header_timeout > 0:
        raise ValueError(f"header_timeout must be > 0 seconds, got {header_timeout}")
    attrs = {"header_timeout": header_timeout, "on_timeout": (on_timeout,) if on_timeout else ()}
    return type("HeaderDeadlineProtocol", (_HeaderDeadlineProtocol,), attrs)


def serve(
    app: Any,
    host: str,
    port: int,
    *,
    header_timeout: float = HEADER_TIMEOUT,
    on_header_timeout: Callable[[], object] | None = None,
    **options: Any,
) -> int:
    """Serve ``app`` (uvloop + httptools, with a header-read deadline); 0 after a clean stop, 1 if
    it never started."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=options.pop("log_level", "warning"),
        access_log=False,
        timeout_graceful_shutdown=options.pop("timeout_graceful_shutdown", 5),
        http=header_deadline_protocol(header_timeout, on_header_timeout),
        **options,
    )
    server = ForegroundServer(config)
    server.run()
    return 0 if server.started else 1
