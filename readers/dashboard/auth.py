"""Who is asking: the viewer behind a request's token, or a 401 — and nothing else.

The token comes as ``Authorization: Bearer …`` or ``?token=…`` (EventSource cannot set headers).
Authorisation is by scope, applied by the handlers: a school viewer's snapshot, stream and detail
are filtered server-side to its school, so no other school's data ever reaches its browser.
"""

from __future__ import annotations

import asyncio

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from readers.dashboard.viewers import Viewer, ViewerRegistry

__all__ = ["authenticate", "request_token", "unauthorized"]


def request_token(conn: HTTPConnection) -> str:
    """The viewer token a request carries ("" when none)."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return conn.query_params.get("token", "").strip()


async def authenticate(conn: HTTPConnection, registry: ViewerRegistry) -> Viewer | None:
    """The active viewer of ``conn``, or None for a missing, unknown or revoked token."""
    token = request_token(conn)
    if not token:
        return None
    # lookup may wait for the registry's first read at start-up: keep that off the event loop.
    return registry.lookup(token, wait=0) or await asyncio.to_thread(registry.lookup, token)


def unauthorized(conn: HTTPConnection) -> JSONResponse:
    """401 with a JSON reason, as the gateway answers (docs/DESIGN.md §5)."""
    reason = (
        "unknown or revoked viewer token"
        if request_token(conn)
        else ("a viewer token is required (Authorization: Bearer … or ?token=…)")
    )
    return JSONResponse({"error": reason}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
